/*
 * sp_sys — system call wrappers with a test hook (sp_sys.h).
 */
#include "sp_sys.h"

#include <unistd.h>

int (*sp_sys_fdatasync_hook)(int fd) = NULL;

int sp_sys_fdatasync(int fd)
{
    return sp_sys_fdatasync_hook != NULL ? sp_sys_fdatasync_hook(fd) : fdatasync(fd);
}
