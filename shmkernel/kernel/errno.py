"""include/uapi/asm-generic/errno-base.h and errno.h: the error numbers the emulated kernel returns (negated)."""

ENOENT = 2
EINTR = 4
EWOULDBLOCK = 11  # EAGAIN
EBUSY = 16
EEXIST = 17
EINVAL = 22
