"""The kernel code being emulated, mirroring the kernel's file names."""
