/*
 * The few Linux system calls Node.js does not expose and Berth's core needs:
 * mknod (whiteouts, fifos), extended attributes (overlay opaque dirs, layer xattrs),
 * mount/umount2 (overlay snapshots), execve (the daemon launcher restarting itself with V8 flags
 * under the same pid), malloc_trim (an idle daemon handing freed heap back), a sealed memfd copy
 * of the exec helper (native/berth_exec.c), posix_spawn (a monitor started without copying the
 * daemon's page tables the way fork() does), pipe and a non-blocking waitpid. Each throws an Error
 * with .code = errno name.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define MAX_STR 65536

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  char msg[1024];
  snprintf(msg, sizeof msg, "%s: %s '%s'", syscall, strerror(err), path ? path : "");
  napi_value error, code_v, msg_v, errno_v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_error(env, NULL, msg_v, &error);
  const char *name = strerrorname_np(err);
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code_v);
  napi_set_named_property(env, error, "code", code_v);
  napi_create_int32(env, -err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_throw(env, error);
  return NULL;
}

/* Copies a JS string argument into a malloc'd buffer; NULL (and a thrown error) on failure. */
static char *get_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len > MAX_STR) {
    napi_throw_type_error(env, NULL, "expected a string argument");
    return NULL;
  }
  char *buf = malloc(len + 1);
  if (!buf) return NULL;
  napi_get_value_string_utf8(env, v, buf, len + 1, &len);
  return buf;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < want) {
    napi_throw_type_error(env, NULL, "not enough arguments");
    return 0;
  }
  return 1;
}

/* mknod(path, mode, major, minor) */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  uint32_t mode, major, minor;
  napi_get_value_uint32(env, argv[1], &mode);
  napi_get_value_uint32(env, argv[2], &major);
  napi_get_value_uint32(env, argv[3], &minor);
  char *path = get_string(env, argv[0]);
  if (!path) return NULL;
  int rc = mknod(path, (mode_t)mode, makedev(major, minor));
  int err = errno;
  napi_value result = rc == 0 ? NULL : throw_errno(env, err, "mknod", path);
  free(path);
  return result;
}

/* lsetxattr(path, name, value: Buffer) */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  void *data = NULL;
  size_t len = 0;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "value must be a Buffer");
    return NULL;
  }
  char *path = get_string(env, argv[0]);
  if (!path) return NULL;
  char *name = get_string(env, argv[1]);
  if (!name) { free(path); return NULL; }
  int rc = lsetxattr(path, name, data, len, 0);
  int err = errno;
  napi_value result = rc == 0 ? NULL : throw_errno(env, err, "lsetxattr", path);
  free(path);
  free(name);
  return result;
}

/* lgetxattr(path, name) -> Buffer | null when the attribute is absent */
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *path = get_string(env, argv[0]);
  if (!path) return NULL;
  char *name = get_string(env, argv[1]);
  if (!name) { free(path); return NULL; }
  napi_value result = NULL;
  ssize_t n = lgetxattr(path, name, NULL, 0);
  if (n < 0) {
    int err = errno;
    if (err == ENODATA) napi_get_null(env, &result);
    else throw_errno(env, err, "lgetxattr", path);
  } else {
    void *out;
    napi_create_buffer(env, (size_t)n, &out, &result);
    ssize_t m = n > 0 ? lgetxattr(path, name, out, (size_t)n) : 0;
    if (m < 0) { int err = errno; result = NULL; throw_errno(env, err, "lgetxattr", path); }
  }
  free(path);
  free(name);
  return result;
}

/* llistxattr(path) -> string[] */
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  char *path = get_string(env, argv[0]);
  if (!path) return NULL;
  napi_value arr;
  napi_create_array(env, &arr);
  ssize_t n = llistxattr(path, NULL, 0);
  if (n < 0) { int err = errno; throw_errno(env, err, "llistxattr", path); free(path); return NULL; }
  char *buf = malloc((size_t)n + 1);
  n = n > 0 ? llistxattr(path, buf, (size_t)n) : 0;
  if (n < 0) { int err = errno; throw_errno(env, err, "llistxattr", path); free(buf); free(path); return NULL; }
  uint32_t i = 0;
  for (ssize_t off = 0; off < n;) {
    size_t l = strlen(buf + off);
    napi_value s;
    napi_create_string_utf8(env, buf + off, l, &s);
    napi_set_element(env, arr, i++, s);
    off += (ssize_t)l + 1;
  }
  free(buf);
  free(path);
  return arr;
}

/* mount(source, target, fstype, flags, data) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  double flags_d;
  napi_get_value_double(env, argv[3], &flags_d);
  char *source = get_string(env, argv[0]);
  char *target = source ? get_string(env, argv[1]) : NULL;
  char *fstype = target ? get_string(env, argv[2]) : NULL;
  char *data = fstype ? get_string(env, argv[4]) : NULL;
  napi_value result = NULL;
  if (data) {
    int rc = mount(source, target, fstype[0] ? fstype : NULL, (unsigned long)flags_d, data[0] ? data : NULL);
    if (rc != 0) throw_errno(env, errno, "mount", target);
  }
  free(source);
  free(target);
  free(fstype);
  free(data);
  return result;
}

/* umount2(target, flags) */
static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int32_t flags;
  napi_get_value_int32(env, argv[1], &flags);
  char *target = get_string(env, argv[0]);
  if (!target) return NULL;
  int rc = umount2(target, flags);
  int err = errno;
  napi_value result = rc == 0 ? NULL : throw_errno(env, err, "umount2", target);
  free(target);
  return result;
}

/* Frees a NULL-terminated array of strings made by get_string_array. */
static void free_string_array(char **arr) {
  if (!arr) return;
  for (char **p = arr; *p; p++) free(*p);
  free(arr);
}

/* A JS array of strings as a NULL-terminated char*[]; NULL (and a thrown error) on failure. */
static char **get_string_array(napi_env env, napi_value v) {
  uint32_t n = 0;
  if (napi_get_array_length(env, v, &n) != napi_ok || n > 4096) {
    napi_throw_type_error(env, NULL, "expected an array of strings");
    return NULL;
  }
  char **arr = calloc(n + 1, sizeof(char *));
  if (!arr) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    napi_get_element(env, v, i, &el);
    arr[i] = get_string(env, el);
    if (!arr[i]) {
      free_string_array(arr);
      return NULL;
    }
  }
  return arr;
}

/* execve(path, argv[], env[]): replaces the process image; returns only by throwing. */
static napi_value js_execve(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char *path = get_string(env, argv[0]);
  char **args = path ? get_string_array(env, argv[1]) : NULL;
  char **envp = args ? get_string_array(env, argv[2]) : NULL;
  if (envp) {
    /* Node marks its stdio close-on-exec; the new image must keep the same stdin/stdout/stderr. */
    for (int fd = 0; fd <= 2; fd++) {
      int flags = fcntl(fd, F_GETFD);
      if (flags >= 0 && (flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    execve(path, args, envp);
    throw_errno(env, errno, "execve", path);
  }
  free(path);
  free_string_array(args);
  free_string_array(envp);
  return NULL;
}

/* malloc_trim(0): returns free pages anywhere in malloc's heap to the kernel; true if any were. */
static napi_value js_malloc_trim(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value result;
  napi_get_boolean(env, released != 0, &result);
  return result;
}

/* sealedCopy(path): a close-on-exec memfd holding the file's bytes, sealed against any change; its
 * fd number. Run through /proc/<pid>/fd/<n>, a helper that enters containers has no host file a
 * container process could write through /proc/<pid>/exe. */
static napi_value js_sealed_copy(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  char *path = get_string(env, argv[0]);
  if (!path) return NULL;
  int src = open(path, O_RDONLY | O_CLOEXEC);
  if (src < 0) {
    napi_value r = throw_errno(env, errno, "open", path);
    free(path);
    return r;
  }
  int fd = memfd_create("berth-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  int err = fd < 0 ? errno : 0;
  char buf[65536];
  ssize_t n;
  while (!err && (n = read(src, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno != EINTR) err = errno;
      continue;
    }
    for (ssize_t off = 0; !err && off < n;) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w < 0 && errno != EINTR) err = errno;
      else if (w > 0) off += w;
    }
  }
  if (!err && fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) err = errno;
  close(src);
  if (err) {
    if (fd >= 0) close(fd);
    napi_value r = throw_errno(env, err, "memfd", path);
    free(path);
    return r;
  }
  free(path);
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* pipe(): [read end, write end], both close-on-exec. */
static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return throw_errno(env, errno, "pipe2", NULL);
  napi_value result, r, w;
  napi_create_array_with_length(env, 2, &result);
  napi_create_int32(env, fds[0], &r);
  napi_create_int32(env, fds[1], &w);
  napi_set_element(env, result, 0, r);
  napi_set_element(env, result, 1, w);
  return result;
}

/* spawnDetached(path, argv, env, cwd, stdio): the pid of a new process running path in its own
 * session, with default signal dispositions and an empty signal mask (Node ignores SIGPIPE, and an
 * ignored signal stays ignored across exec). stdio[i] becomes the child's fd i; -1 is /dev/null.
 * glibc's posix_spawn shares the parent's memory until the exec (CLONE_VM|CLONE_VFORK), so the
 * cost does not grow with the daemon's heap as fork()'s page-table copy does. */
static napi_value js_spawn_detached(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  char *path = get_string(env, argv[0]);
  char **args = path ? get_string_array(env, argv[1]) : NULL;
  char **envp = args ? get_string_array(env, argv[2]) : NULL;
  char *cwd = envp ? get_string(env, argv[3]) : NULL;
  uint32_t nfds = 0;
  if (cwd && (napi_get_array_length(env, argv[4], &nfds) != napi_ok || nfds > 16)) {
    napi_throw_type_error(env, NULL, "expected an array of fds");
    cwd = (free(cwd), NULL);
  }
  napi_value result = NULL;
  if (cwd) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    int err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (!err) err = posix_spawnattr_setsigdefault(&attr, &all);
    if (!err) err = posix_spawnattr_setsigmask(&attr, &none);
    for (uint32_t i = 0; !err && i < nfds; i++) {
      napi_value el;
      int32_t fd = -1;
      napi_get_element(env, argv[4], i, &el);
      napi_get_value_int32(env, el, &fd);
      err = fd >= 0 ? posix_spawn_file_actions_adddup2(&fa, fd, (int)i)
                    : posix_spawn_file_actions_addopen(&fa, (int)i, "/dev/null", O_RDWR, 0);
    }
    if (!err) err = posix_spawn_file_actions_addchdir_np(&fa, cwd);
    pid_t pid = 0;
    if (!err) err = posix_spawn(&pid, path, &fa, &attr, args, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (err) throw_errno(env, err, "posix_spawn", path);
    else napi_create_int32(env, pid, &result);
    free(cwd);
  }
  free(path);
  free_string_array(args);
  free_string_array(envp);
  return result;
}

/* reap(pid): waitpid without blocking. The exit code (128 + signal after a signal), or -1 while
 * the process runs. */
static napi_value js_reap(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int32_t pid = 0;
  napi_get_value_int32(env, argv[0], &pid);
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "waitpid", NULL);
  int code = r == 0 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  napi_value result;
  napi_create_int32(env, code, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL},
      {"lsetxattr", NULL, js_lsetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"lgetxattr", NULL, js_lgetxattr, NULL, NULL, NULL, napi_default, NULL},
      {"llistxattr", NULL, js_llistxattr, NULL, NULL, NULL, napi_default, NULL},
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
      {"umount2", NULL, js_umount2, NULL, NULL, NULL, napi_default, NULL},
      {"execve", NULL, js_execve, NULL, NULL, NULL, napi_default, NULL},
      {"mallocTrim", NULL, js_malloc_trim, NULL, NULL, NULL, napi_default, NULL},
      {"sealedCopy", NULL, js_sealed_copy, NULL, NULL, NULL, napi_default, NULL},
      {"pipe", NULL, js_pipe, NULL, NULL, NULL, napi_default, NULL},
      {"spawnDetached", NULL, js_spawn_detached, NULL, NULL, NULL, napi_default, NULL},
      {"reap", NULL, js_reap, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
