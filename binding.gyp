{
  "targets": [
    {
      "target_name": "berth_native",
      "sources": ["native/berth_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
