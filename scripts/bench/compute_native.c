/*
 * Native reference for the compute bench (scripts/bench/compute_bench.ts): times the loop of
 * fixtures/kernels/lib/compute_loop.c on the host, pinned to one CPU, two ways:
 *
 *   native64  the same C compiled here for x86-64 (gcc -O2), called directly;
 *   native32  the computebench kernel's own i386 machine code for compute_loop (extracted from
 *             its ELF by the bench into CODE_FILE), mapped at its link address CODE_ADDR and run
 *             in 32-bit compatibility mode (code selector 0x23, as ring3 runs a guest) through
 *             a far call, so the bytes and addresses are those the guest runs.
 *
 * usage: compute_native N CPU ROUNDS [CODE_FILE CODE_ADDR]
 * prints: {"n":N,"checksum":"<hex>","ms64":[...],"checksum32":"<hex>","ms32":[...]}
 *         (the 32-bit fields only with CODE_FILE)
 *
 * Build: gcc -O2 -no-pie (the far call's return address and the 32-bit stub must lie below
 * 4 GiB, which a non-PIE executable's .text does). No -m32, so no multilib is needed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "../../fixtures/kernels/lib/compute_loop.c"

#define STACK32_SIZE (64u << 10)

/*
 * uint32_t call32(uint32_t fn, uint32_t arg, uint32_t stack_top): calls the cdecl i386 function
 * fn(arg) in compatibility mode on a stack below 4 GiB and returns its EAX. Every register the
 * x86-64 ABI wants preserved is saved on the 64-bit stack and RSP in memory: after a mode switch
 * the upper halves of the registers are undefined. DS and ES are set to the 32-bit data selector
 * 0x2b (64-bit code runs with null ones, which would fault in compatibility mode).
 */
uint32_t call32(uint32_t fn, uint32_t arg, uint32_t stack_top);
__asm__(
	"	.text\n"
	"	.globl call32\n"
	"	.type call32, @function\n"
	"call32:\n"
	"	pushq %rbx\n"
	"	pushq %rbp\n"
	"	pushq %r12\n"
	"	pushq %r13\n"
	"	pushq %r14\n"
	"	pushq %r15\n"
	"	movl %ds, %eax\n"
	"	pushq %rax\n"
	"	movl %es, %eax\n"
	"	pushq %rax\n"
	"	movq %rsp, call32_rsp(%rip)\n"
	"	movl $0x2b, %eax\n"
	"	movl %eax, %ds\n"
	"	movl %eax, %es\n"
	"	movl %edx, %esp\n"
	"	lcall *call32_target(%rip)\n"
	"	movq call32_rsp(%rip), %rsp\n"
	"	popq %rcx\n"
	"	movl %ecx, %es\n"
	"	popq %rcx\n"
	"	movl %ecx, %ds\n"
	"	popq %r15\n"
	"	popq %r14\n"
	"	popq %r13\n"
	"	popq %r12\n"
	"	popq %rbp\n"
	"	popq %rbx\n"
	"	ret\n"
	"	.size call32, . - call32\n"
	/* The 32-bit side: EDI = fn, ESI = arg survive the switch in their low halves. */
	"	.code32\n"
	"call32_stub:\n"
	"	pushl %esi\n"
	"	call *%edi\n"
	"	addl $4, %esp\n"
	"	lret\n"
	"	.code64\n"
	"	.data\n"
	"	.balign 8\n"
	"call32_target:\n"
	"	.long call32_stub\n"
	"	.word 0x23\n"
	"	.balign 8\n"
	"call32_rsp:\n"
	"	.quad 0\n"
	"	.text\n");

static void die(const char *what)
{
	fprintf(stderr, "compute_native: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Maps CODE_FILE at CODE_ADDR (its link address in the kernel); returns CODE_ADDR. */
static uint32_t load_code32(const char *path, unsigned long addr)
{
	unsigned long page = addr & ~0xfffUL, len;
	FILE *f = fopen(path, "rb");
	long size;
	void *m;

	if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET))
		die("open code file");
	len = (addr - page + (unsigned long)size + 0xfff) & ~0xfffUL;
	m = mmap((void *)page, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (m == MAP_FAILED || m != (void *)page)
		die("mmap code at its link address");
	if (fread((void *)addr, 1, (size_t)size, f) != (size_t)size)
		die("read code file");
	fclose(f);
	if (mprotect(m, len, PROT_READ | PROT_EXEC))
		die("mprotect code");
	return (uint32_t)addr;
}

int main(int argc, char **argv)
{
	uint32_t n, rounds, r, sum64 = 0, sum32 = 0, fn = 0, stack_top = 0;
	double t0;
	int cpu;
	cpu_set_t set;

	if (argc != 4 && argc != 6) {
		fprintf(stderr, "usage: %s N CPU ROUNDS [CODE_FILE CODE_ADDR]\n", argv[0]);
		return 2;
	}
	n = (uint32_t)strtoul(argv[1], 0, 0);
	cpu = atoi(argv[2]);
	rounds = (uint32_t)strtoul(argv[3], 0, 0);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity");
	if (argc == 6) {
		void *stack = mmap(0, STACK32_SIZE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);

		if (stack == MAP_FAILED)
			die("mmap 32-bit stack");
		if ((uintptr_t)call32 >> 32) {
			fprintf(stderr, "compute_native: built as PIE (call32 above 4 GiB): use -no-pie\n");
			return 1;
		}
		stack_top = (uint32_t)(uintptr_t)stack + STACK32_SIZE - 16;
		fn = load_code32(argv[4], strtoul(argv[5], 0, 0));
	}

	/* Interleaved rounds, so that frequency drift hits both builds alike. */
	double *ms64 = calloc(rounds, sizeof(double)), *ms32 = calloc(rounds, sizeof(double));

	if (!ms64 || !ms32)
		die("calloc");
	for (r = 0; r < rounds; r++) {
		t0 = now_ms();
		sum64 = compute_loop(n);
		ms64[r] = now_ms() - t0;
		if (fn) {
			t0 = now_ms();
			sum32 = call32(fn, n, stack_top);
			ms32[r] = now_ms() - t0;
		}
	}
	printf("{\"n\":%u,\"checksum\":\"%x\",\"ms64\":[", n, sum64);
	for (r = 0; r < rounds; r++)
		printf("%s%.3f", r ? "," : "", ms64[r]);
	printf("]");
	if (fn) {
		printf(",\"checksum32\":\"%x\",\"ms32\":[", sum32);
		for (r = 0; r < rounds; r++)
			printf("%s%.3f", r ? "," : "", ms32[r]);
		printf("]");
	}
	printf("}\n");
	return 0;
}
