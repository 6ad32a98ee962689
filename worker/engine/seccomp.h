// The system-call filter `lethe-engine` installs before it loads a model
// (docs/security.md, "The engine sandbox"). What a model's code, or an
// exploit of LibTorch's deserialiser, could use to reach beyond the
// process fails with EPERM (EACCES for opening files):
//   - files: opening for writing, creating or truncating (EACCES; reading
//     stays: LibTorch opens /dev/urandom for each new generator, and the
//     namespaces show nothing else worth reading), openat2, creat, and
//     links, renames, unlink, mkdir, chmod, chown, truncate;
//   - network: socket, socketpair, connect, bind, listen, accept;
//   - processes: execve, execveat, fork, vfork, clone without CLONE_THREAD
//     (threads stay allowed: LibTorch's OpenMP pool), clone3, ptrace,
//     process_vm_readv/writev, and signals to any process but itself;
//   - the kernel: mount, umount2, pivot_root, chroot, unshare, setns, bpf,
//     perf_event_open, userfaultfd, keyctl, add_key, request_key,
//     io_uring_*, module loading, kexec, reboot, swapon/off, personality.
// Everything else is allowed: a deny list, so that LibTorch's own needs
// (mmap, futex, madvise, sched_*...) never break on a kernel or libc update.
#ifndef LETHE_WORKER_ENGINE_SECCOMP_H_
#define LETHE_WORKER_ENGINE_SECCOMP_H_

#include <string>

namespace lethe::worker {

// Installs the filter on the calling thread's process (all threads, TSYNC)
// with no_new_privs. "" on success, else what failed.
std::string InstallEngineSeccompFilter();

}  // namespace lethe::worker

#endif  // LETHE_WORKER_ENGINE_SECCOMP_H_
