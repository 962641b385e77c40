/*
 * crt0.S — the guest's entry point.
 *
 * The VMM starts the vCPU here in ring 3 with %rsp = the stack top and
 * %rdi = the boot-info address. We zero .bss (the loader is expected to,
 * but it costs little and makes the image independent of that), give the
 * C code an ABI-conforming stack and call ls__start(boot), which never
 * returns.
 */
	.section .text._start, "ax", @progbits
	.globl _start
	.type _start, @function
_start:
	movq	%rdi, %r12		/* boot info; callee-saved, survives rep stos */
	cld
	leaq	__bss_start(%rip), %rdi
	leaq	__bss_end(%rip), %rcx
	subq	%rdi, %rcx
	xorl	%eax, %eax
	rep stosb
	movq	%r12, %rdi
	xorl	%ebp, %ebp		/* terminate frame-pointer chains */
	andq	$-16, %rsp		/* 16-byte aligned before the call */
	call	ls__start
	ud2				/* not reached */
	.size _start, . - _start

	/* No executable stack. */
	.section .note.GNU-stack, "", @progbits
