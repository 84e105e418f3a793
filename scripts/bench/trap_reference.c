/*
 * Reference tracer for `deno task bench`: the floor a ptrace-based runtime can reach on this
 * host. It runs a flat 32-bit image in compat mode in a traced child, exactly as ring3 does
 * (SYSEMU, #GP stops, GETREGS/SETREGS), and emulates `out %al,$imm8` by advancing eip. It times
 * the same loop of trapbench (from trap_loop_body) that the runtime runs inside the full boot.
 *
 * usage: trap_reference IMAGE.bin LOAD_ADDR BODY_ADDR COUNT CPU
 * prints: {"traps":N,"usPerTrap":X}
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AREA (16u << 20)

static void die(const char *what) {
	fprintf(stderr, "trap_reference: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
	if (argc != 6) {
		fprintf(stderr, "usage: %s IMAGE.bin LOAD_ADDR BODY_ADDR COUNT CPU\n", argv[0]);
		return 2;
	}
	unsigned long load = strtoul(argv[2], 0, 0), body = strtoul(argv[3], 0, 0);
	long count = atol(argv[4]);
	int cpu = atoi(argv[5]);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set)) die("sched_setaffinity");

	int fd = open(argv[1], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) die("open image");
	/* Shared, so the tracer reads guest code without a syscall, as ring3 reads its memfd. */
	uint8_t *mem = mmap((void *)load, AREA, PROT_READ | PROT_WRITE | PROT_EXEC,
			    MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (mem == MAP_FAILED) die("mmap guest area");
	if (read(fd, mem, st.st_size) != st.st_size) die("read image");

	pid_t pid = fork();
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid) die("waitpid");
	ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD);
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, pid, 0, &r)) die("GETREGS");
	r.rip = body;
	r.rcx = count + 1; /* never leaves the loop while we count */
	r.rax = 0;
	r.rsp = load + AREA - 16;
	r.cs = 0x23;
	r.ss = r.ds = r.es = 0x2b;
	r.eflags = 0x202;
	if (ptrace(PTRACE_SETREGS, pid, 0, &r)) die("SETREGS");

	long traps = 0;
	double t0 = 0, t1 = 0;
	ptrace(PTRACE_SYSEMU, pid, 0, 0);
	while (traps < count) {
		if (waitpid(pid, &status, __WALL) != pid) die("waitpid loop");
		if (!WIFSTOPPED(status)) { fprintf(stderr, "child ended: %#x\n", status); return 1; }
		int sig = WSTOPSIG(status);
		if (sig == SIGSEGV) {
			ptrace(PTRACE_GETREGS, pid, 0, &r);
			uint8_t *ip = mem + (r.rip - load);
			if (ip[0] != 0xe6) { fprintf(stderr, "unexpected opcode %#x\n", ip[0]); return 1; }
			r.rip += 2;
			ptrace(PTRACE_SETREGS, pid, 0, &r);
			if (traps++ == 0) t0 = now_us();
			t1 = now_us();
			sig = 0;
		}
		ptrace(PTRACE_SYSEMU, pid, 0, sig == SIGSTOP ? 0 : sig);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, __WALL);
	printf("{\"traps\":%ld,\"usPerTrap\":%.3f}\n", traps, (t1 - t0) / (traps - 1));
	return 0;
}
