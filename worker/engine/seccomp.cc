#include "worker/engine/seccomp.h"

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

namespace lethe::worker {
namespace {

struct CtxFree {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

constexpr const char* kDeniedCalls[] = {
    // file-system writes and metadata
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "mkdir",
    "mkdirat",
    "rmdir",
    "mknod",
    "mknodat",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "fchownat",
    "lchown",
    "truncate",
    "ftruncate",
    "utimensat",
    "name_to_handle_at",
    "open_by_handle_at",
    // network
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    // processes
    "execve",
    "execveat",
    "fork",
    "vfork",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_open",
    "pidfd_getfd",
    // the kernel
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "personality",
    "acct",
    "quotactl",
    "fanotify_init",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
};

}  // namespace

std::string InstallEngineSeccompFilter() {
  std::unique_ptr<void, CtxFree> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return "seccomp_init failed";
  auto fail = [](const char* what, int rc) {
    return std::string(what) + ": " + std::strerror(-rc);
  };
  for (const char* name : kDeniedCalls) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 0);
        rc < 0) {
      return fail(name, rc);
    }
  }
  // Opening for reading stays allowed: LibTorch opens /dev/urandom for
  // every new generator, and in the namespaces the sandbox shows nothing
  // else worth reading (/usr, an empty /tmp). Writing, creating and
  // truncating fail.
  for (const char* name : {"openat2", "creat"}) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EACCES), nr, 0);
        rc < 0) {
      return fail(name, rc);
    }
  }
  for (auto [name, arg] : {std::pair<const char*, unsigned>{"open", 1},
                           std::pair<const char*, unsigned>{"openat", 2}}) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    for (scmp_datum_t flag : {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC}) {
      if (int rc = seccomp_rule_add(
              ctx.get(), SCMP_ACT_ERRNO(EACCES), nr, 1,
              scmp_arg_cmp{arg, SCMP_CMP_MASKED_EQ, flag, flag});
          rc < 0) {
        return fail(name, rc);
      }
    }
  }
  // clone3 passes its flags in memory, which a filter cannot read: ENOSYS
  // makes glibc fall back to clone, whose flags it can.
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS),
                                SCMP_SYS(clone3), 0);
      rc < 0) {
    return fail("clone3", rc);
  }
  if (int rc =
          seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
      rc < 0) {
    return fail("clone", rc);
  }
  // Signals only to itself (abort() raises through tgkill): without a PID
  // namespace (--engine-isolation=process) the worker runs as the same user.
  const scmp_datum_t self = static_cast<scmp_datum_t>(getpid());
  for (int nr : {SCMP_SYS(kill), SCMP_SYS(tgkill)}) {
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 1,
                                  SCMP_A0(SCMP_CMP_NE, self));
        rc < 0) {
      return fail("kill", rc);
    }
  }
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM),
                                SCMP_SYS(tkill), 0);
      rc < 0) {
    return fail("tkill", rc);
  }
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 1); rc < 0) {
    return fail("no_new_privs", rc);
  }
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc < 0) {
    return fail("tsync", rc);
  }
  if (int rc = seccomp_load(ctx.get()); rc < 0) return fail("seccomp_load", rc);
  return "";
}

}  // namespace lethe::worker
