/*
 * berth-exec: starts one process inside a running container, the way `runc exec` does for a
 * streamed, non-TTY exec, but without runc's two Go runtime start-ups (~90 ms of its ~95 ms here).
 *
 * The daemon spawns it with the process's stdio on fds 0-2, a pipe of settings on fd 3 and a pipe for
 * its answers on fd 4. From fd 3 it reads the settings as NUL-terminated key/value strings up to EOF
 * (see parse_config); on fd 4 it writes "ok <host pid>\n" once the process runs, or
 * "error <message>\n". It then waits for the process, writes "exit <code>\n" (128+N if signal N
 * ended it) and exits with that code.
 *
 * What a container process gets, as runc gives it: the container's cgroups (written by this
 * parent before the child goes on), its namespaces, the bounding/effective/permitted/inheritable/
 * ambient capabilities, supplementary groups, uid/gid, cwd (resolved inside the container, after
 * the user switch), no_new_privs, the seccomp filter (before the privilege drop without
 * no_new_privs, as late as possible with it), rlimits, oom_score_adj, and no inherited fds but
 * 0-2. The helper is non-dumpable and is run by the daemon from a sealed memfd, so a container
 * process cannot reach the host binary through /proc/<pid>/exe (CVE-2019-5736).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define SETTINGS_FD 3
#define STATUS_FD 4
#define MAX_CONFIG (16 << 20)

struct list {
  char **items;
  size_t len, cap;
};

struct config {
  pid_t pid;
  char *starttime;
  struct list cgroups, args, env, rlimits, arches, rules, groups;
  uid_t uid;
  gid_t gid;
  char *cwd;
  uint64_t cap_bnd, cap_eff, cap_prm, cap_inh, cap_amb;
  int nnp;
  char *oom;
  char *seccomp_default;
  char *seccomp_cache;
};

static void die(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  dprintf(STATUS_FD, "error %s\n", msg);
  _exit(127);
}

static void push(struct list *l, char *s) {
  if (l->len == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 16;
    l->items = realloc(l->items, (l->cap + 1) * sizeof(char *));
    if (!l->items) die("out of memory");
  }
  l->items[l->len++] = s;
  l->items[l->len] = NULL;
}

/* strerror as Go words it (runc's messages): "no such file or directory" */
static const char *errstr(int e) {
  static char buf[128];
  snprintf(buf, sizeof buf, "%s", strerror(e));
  if (buf[0] >= 'A' && buf[0] <= 'Z') buf[0] = (char)(buf[0] - 'A' + 'a');
  return buf;
}

static uint64_t hex64(const char *s) { return strtoull(s, NULL, 16); }

/* Keys: pid, starttime, cgroup (a cgroup.procs path, repeated), uid, gid, group (repeated), cwd,
 * cap.bounding|effective|permitted|inheritable|ambient (hex masks), nnp (0/1), oom, rlimit
 * ("<resource> <soft> <hard>", repeated), seccomp.default ("<action> <errno>"), seccomp.arch
 * (repeated), seccomp.rule ("<action> <errno> <syscall> [<index> <op> <value> <value2>]...",
 * repeated), seccomp.cache (a file for the compiled filter), arg (repeated), env (repeated). */
static void parse_config(struct config *c) {
  size_t cap = 64 * 1024, len = 0;
  char *buf = malloc(cap);
  if (!buf) die("out of memory");
  for (;;) {
    if (len == cap) {
      if (cap >= MAX_CONFIG) die("exec settings too large");
      cap *= 2;
      buf = realloc(buf, cap);
      if (!buf) die("out of memory");
    }
    ssize_t n = read(SETTINGS_FD, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("reading exec settings: %s", errstr(errno));
    if (n == 0) break;
    len += (size_t)n;
  }
  size_t i = 0;
  while (i < len) {
    char *key = buf + i;
    char *kend = memchr(key, 0, len - i);
    if (!kend || kend + 1 >= buf + len) die("malformed exec settings");
    char *val = kend + 1;
    char *vend = memchr(val, 0, (size_t)(buf + len - val));
    if (!vend) die("malformed exec settings");
    i = (size_t)(vend - buf) + 1;
    if (!strcmp(key, "pid")) c->pid = (pid_t)atoi(val);
    else if (!strcmp(key, "starttime")) c->starttime = val;
    else if (!strcmp(key, "cgroup")) push(&c->cgroups, val);
    else if (!strcmp(key, "uid")) c->uid = (uid_t)strtoul(val, NULL, 10);
    else if (!strcmp(key, "gid")) c->gid = (gid_t)strtoul(val, NULL, 10);
    else if (!strcmp(key, "group")) push(&c->groups, val);
    else if (!strcmp(key, "cwd")) c->cwd = val;
    else if (!strcmp(key, "cap.bounding")) c->cap_bnd = hex64(val);
    else if (!strcmp(key, "cap.effective")) c->cap_eff = hex64(val);
    else if (!strcmp(key, "cap.permitted")) c->cap_prm = hex64(val);
    else if (!strcmp(key, "cap.inheritable")) c->cap_inh = hex64(val);
    else if (!strcmp(key, "cap.ambient")) c->cap_amb = hex64(val);
    else if (!strcmp(key, "nnp")) c->nnp = !strcmp(val, "1");
    else if (!strcmp(key, "oom")) c->oom = val;
    else if (!strcmp(key, "rlimit")) push(&c->rlimits, val);
    else if (!strcmp(key, "seccomp.default")) c->seccomp_default = val;
    else if (!strcmp(key, "seccomp.arch")) push(&c->arches, val);
    else if (!strcmp(key, "seccomp.cache")) c->seccomp_cache = val;
    else if (!strcmp(key, "seccomp.rule")) push(&c->rules, val);
    else if (!strcmp(key, "arg")) push(&c->args, val);
    else if (!strcmp(key, "env")) push(&c->env, val);
    else die("unknown exec setting %s", key);
  }
  if (c->pid <= 0 || !c->starttime || !c->cwd || c->args.len == 0) die("incomplete exec settings");
}

/* Field 22 of /proc/<pid>/stat: the process's start time, to tell it from a later reuse of its pid. */
static int starttime_matches(pid_t pid, const char *want) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return 0;
  int field = 2;
  for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
    if (++field == 22) return !strcmp(tok, want);
  }
  return 0;
}

static uint32_t action_of(const char *name, int ret) {
  if (!strcmp(name, "allow")) return SCMP_ACT_ALLOW;
  if (!strcmp(name, "errno")) return SCMP_ACT_ERRNO((uint32_t)ret);
  if (!strcmp(name, "kill")) return SCMP_ACT_KILL_THREAD;
  if (!strcmp(name, "kill_thread")) return SCMP_ACT_KILL_THREAD;
  if (!strcmp(name, "kill_process")) return SCMP_ACT_KILL_PROCESS;
  if (!strcmp(name, "trap")) return SCMP_ACT_TRAP;
  if (!strcmp(name, "trace")) return SCMP_ACT_TRACE((uint32_t)ret);
  if (!strcmp(name, "log")) return SCMP_ACT_LOG;
  die("unsupported seccomp action %s", name);
  return 0;
}

static enum scmp_compare op_of(const char *name) {
  if (!strcmp(name, "ne")) return SCMP_CMP_NE;
  if (!strcmp(name, "lt")) return SCMP_CMP_LT;
  if (!strcmp(name, "le")) return SCMP_CMP_LE;
  if (!strcmp(name, "eq")) return SCMP_CMP_EQ;
  if (!strcmp(name, "ge")) return SCMP_CMP_GE;
  if (!strcmp(name, "gt")) return SCMP_CMP_GT;
  if (!strcmp(name, "masked_eq")) return SCMP_CMP_MASKED_EQ;
  die("unsupported seccomp operator %s", name);
  return SCMP_CMP_EQ;
}

/* Compiles the rules with libseccomp. Syscalls this libseccomp does not know are skipped, as runc
 * does. */
static scmp_filter_ctx build_seccomp(const struct config *c) {
  char name[32];
  int ret = 0;
  if (sscanf(c->seccomp_default, "%31s %d", name, &ret) != 2) die("malformed seccomp default");
  scmp_filter_ctx ctx = seccomp_init(action_of(name, ret));
  if (!ctx) die("seccomp_init failed");
  /* no_new_privs is ours to set (from the spec), not libseccomp's */
  if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) < 0) die("seccomp: cannot clear the nnp attribute");
  for (size_t i = 0; i < c->arches.len; i++) {
    uint32_t arch = seccomp_arch_resolve_name(c->arches.items[i]);
    if (!arch) die("unknown seccomp architecture %s", c->arches.items[i]);
    int rc = seccomp_arch_add(ctx, arch);
    if (rc < 0 && rc != -EEXIST) die("seccomp: adding architecture %s: %s", c->arches.items[i], errstr(-rc));
  }
  for (size_t i = 0; i < c->rules.len; i++) {
    char *rule = strdup(c->rules.items[i]);
    char *save = NULL;
    char *act = strtok_r(rule, " ", &save);
    char *retp = strtok_r(NULL, " ", &save);
    char *sys = strtok_r(NULL, " ", &save);
    if (!act || !retp || !sys) die("malformed seccomp rule");
    int nr = seccomp_syscall_resolve_name(sys);
    if (nr == __NR_SCMP_ERROR) {
      free(rule);
      continue;
    }
    struct scmp_arg_cmp args[6];
    unsigned n = 0;
    char *idx;
    while ((idx = strtok_r(NULL, " ", &save))) {
      char *op = strtok_r(NULL, " ", &save);
      char *v1 = strtok_r(NULL, " ", &save);
      char *v2 = strtok_r(NULL, " ", &save);
      if (!op || !v1 || !v2 || n == 6) die("malformed seccomp rule for %s", sys);
      args[n].arg = (unsigned)atoi(idx);
      args[n].op = op_of(op);
      args[n].datum_a = strtoull(v1, NULL, 10);
      args[n].datum_b = strtoull(v2, NULL, 10);
      n++;
    }
    int rc = seccomp_rule_add_array(ctx, action_of(act, atoi(retp)), nr, n, args);
    if (rc < 0) die("seccomp: rule for %s: %s", sys, errstr(-rc));
    free(rule);
  }
  return ctx;
}

/* The cache file: a header (magic, instruction count, FNV-1a of the program) and the program; a torn
 * or foreign file fails the check and is rebuilt. */
#define CACHE_MAGIC 0x31435342u /* "BSC1" */
struct cache_header {
  uint32_t magic, count;
  uint64_t sum;
};

static uint64_t fnv1a(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}

static int read_cached_filter(const char *file, struct sock_fprog *prog) {
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st;
  struct cache_header h;
  int ok = fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof h && read(fd, &h, sizeof h) == (ssize_t)sizeof h &&
           h.magic == CACHE_MAGIC && h.count > 0 && h.count <= BPF_MAXINSNS &&
           (off_t)(sizeof h + h.count * sizeof(struct sock_filter)) == st.st_size;
  if (ok) {
    size_t size = h.count * sizeof(struct sock_filter);
    struct sock_filter *insns = malloc(size);
    ok = insns && read(fd, insns, size) == (ssize_t)size && fnv1a(insns, size) == h.sum;
    if (ok) {
      prog->len = (unsigned short)h.count;
      prog->filter = insns;
    } else free(insns);
  }
  close(fd);
  return ok;
}

/* The filter as a BPF program: from the cache, or compiled and then cached (best effort: a cache
 * that cannot be written only costs the next exec a compile). */
static void seccomp_program(const struct config *c, struct sock_fprog *prog) {
  if (c->seccomp_cache && read_cached_filter(c->seccomp_cache, prog)) return;
  scmp_filter_ctx ctx = build_seccomp(c);
  int mfd = memfd_create("seccomp", MFD_CLOEXEC);
  if (mfd < 0) die("memfd_create: %s", errstr(errno));
  int rc = seccomp_export_bpf(ctx, mfd);
  if (rc < 0) die("seccomp: compiling the filter: %s", errstr(-rc));
  seccomp_release(ctx);
  off_t size = lseek(mfd, 0, SEEK_END);
  if (size <= 0 || size % (off_t)sizeof(struct sock_filter) || size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
    die("seccomp: the compiled filter has a bad size");
  struct sock_filter *insns = malloc((size_t)size);
  if (!insns || pread(mfd, insns, (size_t)size, 0) != size) die("seccomp: reading the compiled filter");
  close(mfd);
  prog->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
  prog->filter = insns;
  if (!c->seccomp_cache) return;
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", c->seccomp_cache, getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return;
  struct cache_header h = {CACHE_MAGIC, prog->len, fnv1a(insns, (size_t)size)};
  int ok = write(fd, &h, sizeof h) == (ssize_t)sizeof h && write(fd, insns, (size_t)size) == size;
  close(fd);
  if (!ok || rename(tmp, c->seccomp_cache) < 0) unlink(tmp);
}

static int load_seccomp(const struct sock_fprog *prog) {
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog);
}

static int read_cap_last_cap(void) {
  char buf[16] = {0};
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return CAP_LAST_CAP;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? atoi(buf) : CAP_LAST_CAP;
}

/* The child reports a failure on `err_fd` (close-on-exec: a successful execve closes it unread). */
static int err_fd = -1;

static void child_fail(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof msg - 1) n = sizeof msg - 1;
  if (write(err_fd, msg, (size_t)n) < 0) _exit(126);
  _exit(127);
}

static const char *env_path(const struct config *c) {
  for (size_t i = 0; i < c->env.len; i++)
    if (!strncmp(c->env.items[i], "PATH=", 5)) return c->env.items[i] + 5;
  return "";
}

/* exec.LookPath's rules as runc applies them: a name with a slash is used as is; otherwise the
 * first regular file with an execute bit along the process's own PATH. */
static void exec_command(const struct config *c) {
  const char *file = c->args.items[0];
  struct stat st;
  if (strchr(file, '/')) {
    if (stat(file, &st) < 0) child_fail("exec: \"%s\": stat %s: %s", file, file, errstr(errno));
    if (S_ISDIR(st.st_mode) || !(st.st_mode & 0111)) child_fail("exec: \"%s\": permission denied", file);
    execve(file, c->args.items, c->env.items);
    child_fail("exec: \"%s\": %s", file, errstr(errno));
  }
  const char *path = env_path(c);
  char candidate[PATH_MAX];
  for (const char *p = path;; p++) {
    const char *end = strchr(p, ':');
    size_t dlen = end ? (size_t)(end - p) : strlen(p);
    if (dlen == 0) snprintf(candidate, sizeof candidate, "./%s", file);
    else snprintf(candidate, sizeof candidate, "%.*s/%s", (int)dlen, p, file);
    if (stat(candidate, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111)) {
      execve(candidate, c->args.items, c->env.items);
      child_fail("exec: \"%s\": %s", candidate, errstr(errno));
    }
    if (!end) break;
    p = end;
  }
  child_fail("exec: \"%s\": executable file not found in $PATH", file);
}

static void join_ns(int fd, int type, const char *name) {
  if (fd >= 0 && setns(fd, type) < 0) child_fail("joining the container's %s namespace: %s", name, errstr(errno));
}

struct namespaces {
  int ipc, uts, net, cgroup, mnt;
};

static void child(const struct config *c, const struct namespaces *ns, int go_fd, const struct sock_fprog *filter,
                  int cap_last) {
  char go;
  if (read(go_fd, &go, 1) != 1) _exit(126); /* the parent failed and said so itself */
  close(go_fd);
  join_ns(ns->ipc, CLONE_NEWIPC, "ipc");
  join_ns(ns->uts, CLONE_NEWUTS, "uts");
  join_ns(ns->net, CLONE_NEWNET, "network");
  join_ns(ns->cgroup, CLONE_NEWCGROUP, "cgroup");
  join_ns(ns->mnt, CLONE_NEWNS, "mount"); /* root and cwd become the container's root */

  if (filter && !c->nnp && load_seccomp(filter) < 0) child_fail("loading seccomp filter: %s", errstr(errno));

  for (int cap = 0; cap <= cap_last; cap++)
    if (!(c->cap_bnd & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
      child_fail("dropping capability %d from the bounding set: %s", cap, errstr(errno));

  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) child_fail("keepcaps: %s", errstr(errno));
  gid_t groups[c->groups.len + 1];
  for (size_t i = 0; i < c->groups.len; i++) groups[i] = (gid_t)strtoul(c->groups.items[i], NULL, 10);
  if (setgroups(c->groups.len, groups) < 0) child_fail("setgroups: %s", errstr(errno));
  if (setresgid(c->gid, c->gid, c->gid) < 0) child_fail("setgid %u: %s", c->gid, errstr(errno));
  if (setresuid(c->uid, c->uid, c->uid) < 0) child_fail("setuid %u: %s", c->uid, errstr(errno));
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) child_fail("keepcaps: %s", errstr(errno));

  if (chdir(c->cwd) < 0)
    child_fail("chdir to cwd (\"%s\") set in config.json failed: %s", c->cwd, errstr(errno));

  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {
      {(uint32_t)c->cap_eff, (uint32_t)c->cap_prm, (uint32_t)c->cap_inh},
      {(uint32_t)(c->cap_eff >> 32), (uint32_t)(c->cap_prm >> 32), (uint32_t)(c->cap_inh >> 32)},
  };
  if (syscall(SYS_capset, &hdr, data) < 0) child_fail("capset: %s", errstr(errno));
  for (int cap = 0; cap <= cap_last; cap++)
    if ((c->cap_amb & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
      child_fail("raising ambient capability %d: %s", cap, errstr(errno));

  if (c->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail("no_new_privs: %s", errstr(errno));
  if (filter && c->nnp && load_seccomp(filter) < 0) child_fail("loading seccomp filter: %s", errstr(errno));

  /* Only stdio crosses into the container (CVE-2024-21626: no host fd may leak in). err_fd is
   * close-on-exec already and must stay open until execve succeeds. */
  if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    child_fail("close_range: %s", errstr(errno));
  exec_command(c);
}

static int open_ns(pid_t pid, const char *name) {
  char path[64], self[64];
  struct stat a, b;
  snprintf(path, sizeof path, "/proc/%d/ns/%s", pid, name);
  snprintf(self, sizeof self, "/proc/self/ns/%s", name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("opening %s: %s", path, errstr(errno));
  /* a namespace the container shares with the host (e.g. --network host) needs no joining */
  if (fstat(fd, &a) == 0 && stat(self, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
    close(fd);
    return -1;
  }
  return fd;
}

int main(void) {
  struct config c;
  memset(&c, 0, sizeof c);
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("prctl(PR_SET_DUMPABLE): %s", errstr(errno));
  parse_config(&c);

  int cgroup_fds[c.cgroups.len + 1];
  for (size_t i = 0; i < c.cgroups.len; i++) {
    cgroup_fds[i] = open(c.cgroups.items[i], O_WRONLY | O_CLOEXEC);
    if (cgroup_fds[i] < 0) die("opening %s: %s", c.cgroups.items[i], errstr(errno));
  }
  struct namespaces ns = {open_ns(c.pid, "ipc"), open_ns(c.pid, "uts"), open_ns(c.pid, "net"),
                          open_ns(c.pid, "cgroup"), open_ns(c.pid, "mnt")};
  int pid_ns = open_ns(c.pid, "pid");
  /* checked after the opens: the namespaces are the container's, not those of a reused pid */
  if (!starttime_matches(c.pid, c.starttime)) die("container is not running");

  for (size_t i = 0; i < c.rlimits.len; i++) {
    int res;
    unsigned long long soft, hard;
    if (sscanf(c.rlimits.items[i], "%d %llu %llu", &res, &soft, &hard) != 3) die("malformed rlimit");
    struct rlimit rl = {(rlim_t)soft, (rlim_t)hard};
    if (setrlimit(res, &rl) < 0) die("setrlimit %d: %s", res, errstr(errno));
  }
  if (c.oom) {
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, c.oom, strlen(c.oom)) < 0) die("setting oom_score_adj: %s", errstr(errno));
    close(fd);
  }
  int cap_last = read_cap_last_cap();
  struct sock_fprog seccomp = {0, NULL};
  if (c.seccomp_default) seccomp_program(&c, &seccomp);
  if (pid_ns >= 0 && setns(pid_ns, CLONE_NEWPID) < 0) die("joining the container's pid namespace: %s", errstr(errno));

  int go[2], err[2];
  if (pipe2(go, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) die("pipe: %s", errstr(errno));
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", errstr(errno));
  if (pid == 0) {
    close(go[1]);
    close(err[0]);
    err_fd = err[1];
    child(&c, &ns, go[0], c.seccomp_default ? &seccomp : NULL, cap_last);
  }
  close(go[0]);
  close(err[1]);
  /* into the container's cgroups before it runs anything of its own */
  char pidstr[16];
  int plen = snprintf(pidstr, sizeof pidstr, "%d", pid);
  for (size_t i = 0; i < c.cgroups.len; i++) {
    if (write(cgroup_fds[i], pidstr, (size_t)plen) < 0) {
      int e = errno;
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      die("joining cgroup %s: %s", c.cgroups.items[i], errstr(e));
    }
    close(cgroup_fds[i]);
  }
  if (write(go[1], "g", 1) != 1) die("starting the process: %s", errstr(errno));
  close(go[1]);

  char msg[1024];
  ssize_t n;
  do n = read(err[0], msg, sizeof msg - 1);
  while (n < 0 && errno == EINTR);
  close(err[0]);
  int status;
  if (n > 0) {
    msg[n] = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    dprintf(STATUS_FD, "error %s\n", msg);
    return 127;
  }
  dprintf(STATUS_FD, "ok %d\n", pid);
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 255;
  }
  int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  dprintf(STATUS_FD, "exit %d\n", code);
  return code;
}
