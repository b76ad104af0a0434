/*
 * durashim: an LD_PRELOAD layer that keeps, beside a directory tree, the state that a
 * power cut would leave of it under a conservative POSIX durability model (README.md):
 *
 *   - file data reaches the "disk" only when fsync/fdatasync is called on the file
 *     (sync_file_range is deliberately not modelled: it makes nothing durable);
 *   - a directory entry reaches it only when the directory itself is fsynced.
 *
 * Environment: DURASHIM_ROOT (the watched directory) and DURASHIM_SHADOW (a directory
 * outside it where the durable state is kept). Without both, the shim does nothing.
 *
 * Shadow layout (read back by powercut.py after SIGKILL):
 *   root         key of ROOT
 *   files/<key>  durable content of a regular file
 *   dirs/<key>   durable entries of a directory (see write_manifest for the format)
 *   errors       present only if the shim could not keep its model (the cut refuses)
 *   initialised  written once the first process has snapshotted ROOT
 *
 * A key is "<inode>-<generation>" (FS_IOC_GETVERSION), because inode numbers are reused
 * after unlink and only the generation tells the new file from the old one; "<inode>-x"
 * where the file system has no generations.
 *
 * Which byte ranges were written since the last fsync is kept in memory only (it dies
 * with the process, as the page cache's dirty bits would not: the restore finds
 * non-durable data by comparing the real file with its shadow). Everything durable is a
 * file in the shadow directory, so it survives SIGKILL.
 */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define FD_CACHE 65536   /* descriptors whose classification is cached */
#define INODES 4096      /* inodes with dirty ranges at once */
#define RANGES 32        /* dirty ranges per inode before they are collapsed into one */
#define TO_EOF UINT64_MAX
#define COPY_BUF (1 << 20)
#define KEY_LEN 48                   /* "<u64>-<u32>" and a NUL fit */
#define SHADOW_PATH (PATH_MAX + 128) /* shadow dir + "/files/" + key */

/* ---- the real functions ------------------------------------------------------------ */

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off64_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_pwritev64v2)(int, const struct iovec *, int, off64_t, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);
static int (*real_truncate)(const char *, off_t);
static int (*real_truncate64)(const char *, off64_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_fallocate64)(int, int, off64_t, off64_t);
static int (*real_posix_fallocate)(int, off_t, off_t);
static int (*real_posix_fallocate64)(int, off64_t, off64_t);
static ssize_t (*real_copy_file_range)(int, off64_t *, int, off64_t *, size_t, unsigned int);
static ssize_t (*real_sendfile)(int, int, off_t *, size_t);
static ssize_t (*real_sendfile64)(int, int, off64_t *, size_t);
static ssize_t (*real_splice)(int, off64_t *, int, off64_t *, size_t, unsigned int);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static void *(*real_mmap64)(void *, size_t, int, int, int, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static void (*real_sync)(void);
static int (*real_syncfs)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real___openat_2)(int, const char *, int);
static int (*real___openat64_2)(int, const char *, int);
static int (*real_close)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);

static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void resolve_all(void) {
#define R(name) real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name)
    R(write); R(pwrite); R(pwrite64); R(writev); R(pwritev); R(pwritev64); R(pwritev2);
    R(pwritev64v2); R(ftruncate); R(ftruncate64); R(truncate); R(truncate64);
    R(fallocate); R(fallocate64); R(posix_fallocate); R(posix_fallocate64);
    R(copy_file_range); R(sendfile); R(sendfile64); R(splice); R(mmap); R(mmap64);
    R(fsync); R(fdatasync); R(sync); R(syncfs); R(open); R(open64); R(openat);
    R(openat64); R(creat); R(creat64); R(__open_2); R(__open64_2); R(__openat_2);
    R(__openat64_2); R(close); R(dup2); R(dup3);
#undef R
}

/* Wrappers may run before the constructor (other libraries' constructors write too). */
static inline void resolve(void) { pthread_once(&resolved, resolve_all); }

/* ---- configuration and tables ------------------------------------------------------ */

static struct {
    int enabled;
    char root[PATH_MAX];
    size_t root_len;
    char shadow[PATH_MAX];
    dev_t dev;
} cfg;

/* Protects fds[], inodes[] and inode_overflow; held only for table work, never I/O. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Serialises every shadow update. An fsync must not return while another fsync of the
 * same file is still copying ranges that the first one took off the dirty list: the
 * second caller relies on those ranges too. One lock for all files keeps that simple. */
static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;

enum { FD_UNKNOWN = 0, FD_TRACKED, FD_IGNORED };

struct fdinfo {
    uint64_t ino;
    uint32_t gen;
    uint8_t has_gen;
    uint8_t state;
    uint8_t dsync;  /* opened O_SYNC/O_DSYNC: every write is durable at once */
    uint8_t append; /* opened O_APPEND: writes land at the end, whatever the offset */
};

struct range {
    uint64_t start, end; /* [start, end); end TO_EOF: up to the end of the file */
};

struct inode {
    uint64_t ino;
    uint32_t gen;
    uint8_t used;
    uint8_t mapped; /* shared writable mapping: any byte may be dirty at any fsync */
    uint16_t n;
    struct range r[RANGES];
};

static struct fdinfo fds[FD_CACHE];
static struct inode inodes[INODES];
/* Set when an inode found no slot: its ranges are unknown, so every fsync of a file that
 * has no entry copies the whole file. */
static int inode_overflow;

static void shim_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Records that the model could not be kept; powercut.py refuses to restore then, so a
 * broken shim fails the test instead of inventing or hiding losses. */
static void shim_error(const char *fmt, ...) {
    int saved = errno;
    char msg[PATH_MAX + 256], path[SHADOW_PATH];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof msg - 2)
        n = sizeof msg - 2;
    msg[n++] = '\n';
    real_write(2, "durashim: ", 10);
    real_write(2, msg, n);
    if (snprintf(path, sizeof path, "%s/errors", cfg.shadow) < (int)sizeof path) {
        int fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            real_write(fd, msg, n);
            real_close(fd);
        }
    }
    errno = saved;
}

/* The generation part of a file's key. The kernel stores an int through the pointer. */
static void key_of(int fd, uint32_t *gen, uint8_t *has_gen) {
    long v = 0;
    *has_gen = ioctl(fd, FS_IOC_GETVERSION, &v) == 0;
    *gen = (uint32_t)v;
}

static void key_str(char *out, size_t len, uint64_t ino, uint32_t gen, uint8_t has_gen) {
    if (has_gen)
        snprintf(out, len, "%llu-%u", (unsigned long long)ino, gen);
    else
        snprintf(out, len, "%llu-x", (unsigned long long)ino);
}

static int under_root(const char *path, size_t len) {
    return len >= cfg.root_len && memcmp(path, cfg.root, cfg.root_len) == 0 &&
           (len == cfg.root_len || path[cfg.root_len] == '/');
}

static int fd_under_root(int fd) {
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path);
    return n > 0 && (size_t)n < sizeof path && under_root(path, (size_t)n);
}

/* A readable descriptor of the same file (the caller's may be write-only). */
static int reopen(int fd, int flags) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    return real_open(link, flags | O_CLOEXEC);
}

static void forget_fd(int fd) {
    if (fd < 0 || fd >= FD_CACHE)
        return;
    pthread_mutex_lock(&mu);
    fds[fd].state = FD_UNKNOWN;
    pthread_mutex_unlock(&mu);
}

/* Whether fd is a regular file under ROOT; fills *out. The cache entry is trusted only
 * while the descriptor still names the same inode number, which also covers descriptors
 * that glibc closes internally (fclose) and that are then reused. */
static int classify(int fd, struct fdinfo *out) {
    struct stat st;
    if (!cfg.enabled || fd < 0 || fstat(fd, &st) != 0)
        return 0;
    if (!S_ISREG(st.st_mode) || st.st_dev != cfg.dev)
        return 0;
    if (fd < FD_CACHE) {
        pthread_mutex_lock(&mu);
        struct fdinfo c = fds[fd];
        pthread_mutex_unlock(&mu);
        if (c.state != FD_UNKNOWN && c.ino == (uint64_t)st.st_ino) {
            *out = c;
            return c.state == FD_TRACKED;
        }
    }
    struct fdinfo c = {.ino = st.st_ino, .state = FD_IGNORED};
    if (fd_under_root(fd)) {
        c.state = FD_TRACKED;
        key_of(fd, &c.gen, &c.has_gen);
        int fl = fcntl(fd, F_GETFL);
        c.dsync = fl >= 0 && (fl & O_DSYNC) != 0; /* O_SYNC includes O_DSYNC's bit */
        c.append = fl >= 0 && (fl & O_APPEND) != 0;
    }
    if (fd < FD_CACHE) {
        pthread_mutex_lock(&mu);
        fds[fd] = c;
        pthread_mutex_unlock(&mu);
    }
    *out = c;
    return c.state == FD_TRACKED;
}

/* Finds the inode's slot; with insert, takes a free slot or one with nothing dirty. */
static struct inode *find_inode(uint64_t ino, uint32_t gen, int insert) {
    size_t h = (size_t)((ino * 11400714819323198485ull) ^ gen) % INODES;
    struct inode *free_slot = NULL;
    for (size_t i = 0; i < INODES; i++) {
        struct inode *e = &inodes[(h + i) % INODES];
        if (!e->used) {
            free_slot = free_slot ? free_slot : e;
            break;
        }
        if (e->ino == ino && e->gen == gen)
            return e;
        if (!free_slot && e->n == 0 && !e->mapped)
            free_slot = e; /* clean: reusable, and no lookup can need what it held */
    }
    if (!insert)
        return NULL;
    if (!free_slot) {
        inode_overflow = 1;
        return NULL;
    }
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->used = 1;
    free_slot->ino = ino;
    free_slot->gen = gen;
    return free_slot;
}

/* Marks [start, end) dirty. Over-approximating is always safe: copying bytes that did
 * not change since the last fsync copies what the shadow already holds. */
static void mark_dirty(const struct fdinfo *c, uint64_t start, uint64_t end) {
    if (end <= start)
        return;
    pthread_mutex_lock(&mu);
    struct inode *e = find_inode(c->ino, c->gen, 1);
    if (e) {
        int merged = 0;
        for (int i = 0; i < e->n && !merged; i++) {
            if (start <= e->r[i].end && end >= e->r[i].start) {
                e->r[i].start = start < e->r[i].start ? start : e->r[i].start;
                e->r[i].end = end > e->r[i].end ? end : e->r[i].end;
                merged = 1;
            }
        }
        if (!merged && e->n < RANGES) {
            e->r[e->n].start = start;
            e->r[e->n].end = end;
            e->n++;
        } else if (!merged) {
            for (int i = 0; i < e->n; i++) {
                start = e->r[i].start < start ? e->r[i].start : start;
                end = e->r[i].end > end ? e->r[i].end : end;
            }
            e->r[0].start = start;
            e->r[0].end = end;
            e->n = 1;
        }
    }
    pthread_mutex_unlock(&mu);
}

static void mark_mapped(const struct fdinfo *c) {
    pthread_mutex_lock(&mu);
    struct inode *e = find_inode(c->ino, c->gen, 1);
    if (e)
        e->mapped = 1;
    pthread_mutex_unlock(&mu);
}

/* ---- the shadow store -------------------------------------------------------------- */

static char copy_buf[COPY_BUF]; /* used under sync_mu only */

static int write_all_at(int fd, const char *buf, size_t len, uint64_t off) {
    while (len > 0) {
        ssize_t n = real_pwrite64(fd, buf, len, (off64_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int copy_range(int from, int to, uint64_t start, uint64_t end) {
    while (start < end) {
        size_t want = end - start < COPY_BUF ? (size_t)(end - start) : COPY_BUF;
        ssize_t n = pread(from, copy_buf, want, (off_t)start);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break; /* the file shrank meanwhile */
        if (write_all_at(to, copy_buf, (size_t)n, start) != 0)
            return -1;
        start += (uint64_t)n;
    }
    return 0;
}

/* Copies the given ranges (or everything) of the file open as rfd into its shadow and
 * gives the shadow the file's current length. A file without a shadow yet is copied
 * whole: an fsync makes all of its content durable, and nothing earlier is known. */
static void store_content(int rfd, const char *key, const struct range *r, int n, int whole) {
    char path[SHADOW_PATH];
    struct stat st;
    snprintf(path, sizeof path, "%s/files/%s", cfg.shadow, key);
    int sfd = real_open(path, O_WRONLY | O_CLOEXEC);
    if (sfd < 0 && errno == ENOENT) {
        sfd = real_open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        whole = 1;
    }
    if (sfd < 0 || fstat(rfd, &st) != 0) {
        shim_error("cannot update %s: %s", path, strerror(errno));
        if (sfd >= 0)
            real_close(sfd);
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    int bad = 0;
    if (whole) {
        bad = copy_range(rfd, sfd, 0, size) != 0;
    } else {
        for (int i = 0; i < n && !bad; i++) {
            uint64_t end = r[i].end < size ? r[i].end : size;
            if (r[i].start < end)
                bad = copy_range(rfd, sfd, r[i].start, end) != 0;
        }
    }
    if (bad || real_ftruncate64(sfd, (off64_t)size) != 0)
        shim_error("cannot copy into %s: %s", path, strerror(errno));
    real_close(sfd);
}

/* fsync/fdatasync of a tracked regular file: its dirty ranges become durable. */
static void sync_file(int fd, const struct fdinfo *c) {
    struct range r[RANGES];
    int n = 0, whole;
    char key[KEY_LEN];
    pthread_mutex_lock(&sync_mu);
    pthread_mutex_lock(&mu);
    struct inode *e = find_inode(c->ino, c->gen, 0);
    if (e) {
        n = e->n;
        memcpy(r, e->r, sizeof(struct range) * (size_t)n);
        e->n = 0; /* writes from now on are dirty again, even during the copy below */
        whole = e->mapped;
    } else {
        whole = inode_overflow;
    }
    pthread_mutex_unlock(&mu);
    key_str(key, sizeof key, c->ino, c->gen, c->has_gen);
    int rfd = reopen(fd, O_RDONLY);
    if (rfd < 0)
        shim_error("cannot reopen fd %d to copy %s: %s", fd, key, strerror(errno));
    else {
        store_content(rfd, key, r, n, whole);
        real_close(rfd);
    }
    pthread_mutex_unlock(&sync_mu);
}

struct outbuf {
    int fd;
    int bad;
    uint64_t off; /* where data[] goes in the file */
    size_t len;
    char data[1 << 16];
};

static void out_flush(struct outbuf *o) {
    if (!o->bad && o->len > 0)
        o->bad = write_all_at(o->fd, o->data, o->len, o->off) != 0;
    o->off += o->len;
    o->len = 0;
}

static void out_put(struct outbuf *o, const void *p, size_t len) {
    while (len > 0 && !o->bad) {
        if (o->len == sizeof o->data)
            out_flush(o);
        size_t k = sizeof o->data - o->len < len ? sizeof o->data - o->len : len;
        memcpy(o->data + o->len, p, k);
        o->len += k;
        p = (const char *)p + k;
        len -= k;
    }
}

static struct outbuf manifest_buf; /* used under sync_mu only */

/* Writes the durable entries of the directory open as dfd (readable) into dirs/<key>,
 * atomically for the reader (tmp + rename; the shadow itself needs no fsync: the
 * machine running the test does not lose power). One record per entry:
 *
 *   "<type> <mode, octal> <key>\0<name>\0<symlink target or empty>\0"
 *
 * type f (regular file), d (directory), l (symlink; key "-"). Other types are left out.
 * Subdirectories get no manifest here: a directory never fsynced has no durable entry.
 * Fills dir_key with the directory's own key. Returns -1 if it could not be written. */
static int write_manifest(int dfd, char *dir_key, size_t dir_key_len) {
    struct stat st;
    uint32_t gen;
    uint8_t has_gen;
    char tmp[SHADOW_PATH], final[SHADOW_PATH];
    if (fstat(dfd, &st) != 0)
        return -1;
    key_of(dfd, &gen, &has_gen);
    key_str(dir_key, dir_key_len, st.st_ino, gen, has_gen);
    snprintf(tmp, sizeof tmp, "%s/dirs/%s.tmp", cfg.shadow, dir_key);
    snprintf(final, sizeof final, "%s/dirs/%s", cfg.shadow, dir_key);
    int list_fd = dup(dfd);
    DIR *d = list_fd >= 0 ? fdopendir(list_fd) : NULL;
    if (!d) {
        if (list_fd >= 0)
            real_close(list_fd);
        shim_error("cannot list directory %s: %s", dir_key, strerror(errno));
        return -1;
    }
    rewinddir(d);
    struct outbuf *o = &manifest_buf;
    o->fd = real_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    o->off = 0;
    o->len = 0;
    o->bad = o->fd < 0;
    struct dirent *de;
    while (!o->bad && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        struct stat es;
        if (fstatat(dfd, name, &es, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* removed meanwhile */
        char type, key[KEY_LEN] = "-", target[PATH_MAX] = "", head[96];
        if (S_ISREG(es.st_mode) || S_ISDIR(es.st_mode)) {
            type = S_ISREG(es.st_mode) ? 'f' : 'd';
            int efd = real_openat(dfd, name,
                                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
                                      (type == 'd' ? O_DIRECTORY : 0));
            if (efd < 0)
                continue; /* removed or replaced meanwhile */
            if (fstat(efd, &es) != 0) {
                real_close(efd);
                continue;
            }
            key_of(efd, &gen, &has_gen);
            key_str(key, sizeof key, es.st_ino, gen, has_gen);
            real_close(efd);
        } else if (S_ISLNK(es.st_mode)) {
            type = 'l';
            ssize_t n = readlinkat(dfd, name, target, sizeof target - 1);
            if (n < 0)
                continue;
            target[n] = 0;
        } else {
            continue;
        }
        int hl = snprintf(head, sizeof head, "%c %o %s", type, (unsigned)(es.st_mode & 07777), key);
        out_put(o, head, (size_t)hl + 1);
        out_put(o, name, strlen(name) + 1);
        out_put(o, target, strlen(target) + 1);
    }
    closedir(d);
    out_flush(o);
    if (o->fd >= 0)
        real_close(o->fd);
    if (o->bad || rename(tmp, final) != 0) {
        shim_error("cannot write manifest %s: %s", final, strerror(errno));
        return -1;
    }
    return 0;
}

/* Takes the whole tree under the directory dfd as durable: the state at start, and
 * what sync/syncfs leave. Called under sync_mu. */
static void snapshot_dir(int dfd) {
    char key[KEY_LEN];
    if (write_manifest(dfd, key, sizeof key) != 0)
        return;
    int list_fd = dup(dfd);
    DIR *d = list_fd >= 0 ? fdopendir(list_fd) : NULL;
    if (!d) {
        if (list_fd >= 0)
            real_close(list_fd);
        return;
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat es;
        if (fstatat(dfd, de->d_name, &es, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (!S_ISREG(es.st_mode) && !S_ISDIR(es.st_mode))
            continue;
        int efd = real_openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (efd < 0)
            continue;
        if (fstat(efd, &es) == 0 && S_ISDIR(es.st_mode)) {
            snapshot_dir(efd);
        } else if (S_ISREG(es.st_mode)) {
            uint32_t gen;
            uint8_t has_gen;
            char fkey[KEY_LEN], path[SHADOW_PATH];
            key_of(efd, &gen, &has_gen);
            key_str(fkey, sizeof fkey, es.st_ino, gen, has_gen);
            snprintf(path, sizeof path, "%s/files/%s", cfg.shadow, fkey);
            unlink(path); /* store_content copies a file without a shadow whole */
            store_content(efd, fkey, NULL, 0, 1);
        }
        real_close(efd);
    }
    closedir(d);
}

/* sync()/syncfs(): everything under ROOT becomes durable. Dirty lists are cleared before
 * the walk copies, so writes made during the walk stay dirty. */
static void sync_everything(void) {
    pthread_mutex_lock(&sync_mu);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < INODES; i++)
        inodes[i].n = 0;
    pthread_mutex_unlock(&mu);
    int rfd = real_open(cfg.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rfd >= 0) {
        snapshot_dir(rfd);
        real_close(rfd);
    } else {
        shim_error("cannot open %s: %s", cfg.root, strerror(errno));
    }
    pthread_mutex_unlock(&sync_mu);
}

/* The model's half of fsync/fdatasync (both make data and size durable here). */
static void model_sync(int fd) {
    if (!cfg.enabled)
        return;
    int saved = errno;
    struct stat st;
    struct fdinfo c;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (st.st_dev == cfg.dev && fd_under_root(fd)) {
            char key[KEY_LEN];
            pthread_mutex_lock(&sync_mu);
            int dfd = reopen(fd, O_RDONLY | O_DIRECTORY);
            if (dfd >= 0) {
                write_manifest(dfd, key, sizeof key);
                real_close(dfd);
            } else {
                shim_error("cannot reopen directory fd %d: %s", fd, strerror(errno));
            }
            pthread_mutex_unlock(&sync_mu);
        }
    } else {
        /* Resolved afresh: a file renamed into ROOT since its first write counts now. */
        forget_fd(fd);
        if (classify(fd, &c))
            sync_file(fd, &c);
    }
    errno = saved;
}

/* ---- start-up ---------------------------------------------------------------------- */

static int mkdir_p(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* A child forked while another thread held a lock would deadlock on its first write. */
static void atfork_prepare(void) {
    pthread_mutex_lock(&sync_mu);
    pthread_mutex_lock(&mu);
}

static void atfork_release(void) {
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&sync_mu);
}

__attribute__((constructor)) static void durashim_init(void) {
    resolve();
    const char *root = getenv("DURASHIM_ROOT"), *shadow = getenv("DURASHIM_SHADOW");
    if (!root || !shadow || !*root || !*shadow)
        return;
    struct stat st;
    if (!realpath(root, cfg.root) || stat(cfg.root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "durashim: DURASHIM_ROOT %s is not a directory; shim disabled\n", root);
        return;
    }
    cfg.root_len = strlen(cfg.root);
    cfg.dev = st.st_dev;
    if (mkdir_p(shadow) != 0 || !realpath(shadow, cfg.shadow)) {
        fprintf(stderr, "durashim: cannot create DURASHIM_SHADOW %s; shim disabled\n", shadow);
        return;
    }
    if (under_root(cfg.shadow, strlen(cfg.shadow))) {
        fprintf(stderr, "durashim: DURASHIM_SHADOW must be outside DURASHIM_ROOT; shim disabled\n");
        return;
    }
    char path[SHADOW_PATH];
    snprintf(path, sizeof path, "%s/files", cfg.shadow);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/dirs", cfg.shadow);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/initialised", cfg.shadow);
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
    cfg.enabled = 1;
    /* A later process on the same shadow (a child inheriting LD_PRELOAD) must not take
     * the first one's unsynced writes as durable: only the first snapshots. */
    if (access(path, F_OK) == 0)
        return;
    int rfd = real_open(cfg.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char key[KEY_LEN], keyfile[SHADOW_PATH];
    if (rfd < 0 || fstat(rfd, &st) != 0) {
        shim_error("cannot open %s: %s", cfg.root, strerror(errno));
        return;
    }
    pthread_mutex_lock(&sync_mu);
    snapshot_dir(rfd);
    pthread_mutex_unlock(&sync_mu);
    uint32_t gen;
    uint8_t has_gen;
    key_of(rfd, &gen, &has_gen);
    key_str(key, sizeof key, st.st_ino, gen, has_gen);
    real_close(rfd);
    snprintf(keyfile, sizeof keyfile, "%s/root", cfg.shadow);
    int fd = real_open(keyfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0 && real_write(fd, key, strlen(key)) == (ssize_t)strlen(key);
    if (fd >= 0)
        real_close(fd);
    fd = ok ? real_open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (fd < 0)
        shim_error("cannot initialise the shadow %s: %s", cfg.shadow, strerror(errno));
    else
        real_close(fd);
}

/* ---- interposed calls -------------------------------------------------------------- */
/* Each returns the real call's result and errno unchanged. A write is recorded only once
 * the real call returned, so an fsync that starts after it covers it. */

/* After a positional-less write of n bytes: the range just written, from the new file
 * position; appends are recorded from the size seen before the call to the end. */
static void after_write(int fd, const struct fdinfo *c, ssize_t n, int append,
                        uint64_t size_before) {
    if (n <= 0)
        return;
    if (append) {
        mark_dirty(c, size_before, TO_EOF);
    } else {
        off_t pos = lseek(fd, 0, SEEK_CUR);
        if (pos >= n)
            mark_dirty(c, (uint64_t)pos - (uint64_t)n, (uint64_t)pos);
        else
            mark_dirty(c, 0, TO_EOF);
    }
    if (c->dsync)
        sync_file(fd, c);
}

static void after_pwrite(int fd, const struct fdinfo *c, ssize_t n, int64_t off,
                         uint64_t size_before) {
    if (n <= 0)
        return;
    /* Linux appends pwrite data on O_APPEND descriptors, whatever the offset. */
    if (c->append)
        mark_dirty(c, size_before, TO_EOF);
    else
        mark_dirty(c, (uint64_t)off, (uint64_t)off + (uint64_t)n);
    if (c->dsync)
        sync_file(fd, c);
}

static uint64_t size_of(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

ssize_t write(int fd, const void *buf, size_t len) {
    resolve();
    int saved = errno;
    struct fdinfo c;
    int t = classify(fd, &c);
    uint64_t before = t && c.append ? size_of(fd) : 0;
    errno = saved;
    ssize_t n = real_write(fd, buf, len);
    if (t) {
        saved = errno;
        after_write(fd, &c, n, c.append, before);
        errno = saved;
    }
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    resolve();
    int saved = errno;
    struct fdinfo c;
    int t = classify(fd, &c);
    uint64_t before = t && c.append ? size_of(fd) : 0;
    errno = saved;
    ssize_t n = real_writev(fd, iov, cnt);
    if (t) {
        saved = errno;
        after_write(fd, &c, n, c.append, before);
        errno = saved;
    }
    return n;
}

#define PWRITE_LIKE(call, off)                                            \
    resolve();                                                            \
    int saved = errno;                                                    \
    struct fdinfo c;                                                      \
    int t = classify(fd, &c);                                             \
    uint64_t before = t && c.append ? size_of(fd) : 0;                    \
    errno = saved;                                                        \
    ssize_t n = (call);                                                   \
    if (t) {                                                              \
        saved = errno;                                                    \
        after_pwrite(fd, &c, n, (int64_t)(off), before);                  \
        errno = saved;                                                    \
    }                                                                     \
    return n;

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) {
    PWRITE_LIKE(real_pwrite(fd, buf, len, off), off)
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off) {
    PWRITE_LIKE(real_pwrite64(fd, buf, len, off), off)
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    PWRITE_LIKE(real_pwritev(fd, iov, cnt, off), off)
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off) {
    PWRITE_LIKE(real_pwritev64(fd, iov, cnt, off), off)
}

/* pwritev2: offset -1 writes at the file position, RWF_APPEND appends. */
#define PWRITEV2_LIKE(real)                                                \
    resolve();                                                             \
    if (!real) {                                                           \
        errno = ENOSYS;                                                    \
        return -1;                                                         \
    }                                                                      \
    int saved = errno;                                                     \
    struct fdinfo c;                                                       \
    int t = classify(fd, &c);                                              \
    int append = t && (c.append || (flags & RWF_APPEND));                  \
    uint64_t before = append ? size_of(fd) : 0;                            \
    errno = saved;                                                         \
    ssize_t n = real(fd, iov, cnt, off, flags);                            \
    if (t) {                                                               \
        saved = errno;                                                     \
        if (off == -1 || append)                                           \
            after_write(fd, &c, n, append, before);                        \
        else                                                               \
            after_pwrite(fd, &c, n, (int64_t)off, before);                 \
        if ((flags & (RWF_DSYNC | RWF_SYNC)) && n > 0 && !c.dsync)         \
            sync_file(fd, &c);                                             \
        errno = saved;                                                     \
    }                                                                      \
    return n;

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) {
    PWRITEV2_LIKE(real_pwritev2)
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags) {
    PWRITEV2_LIKE(real_pwritev64v2)
}

/* Calls that change content from some offset on in ways not worth computing exactly
 * (truncation, hole punching, range collapse): everything from there is dirty. */
#define FROM_OFFSET_DIRTY(call, fd_expr, from)                            \
    resolve();                                                            \
    int saved = errno;                                                    \
    struct fdinfo c;                                                      \
    int t = classify((fd_expr), &c);                                      \
    errno = saved;                                                        \
    __typeof__(call) ret = (call);                                        \
    if (t) {                                                              \
        saved = errno;                                                    \
        mark_dirty(&c, (uint64_t)(from), TO_EOF);                         \
        errno = saved;                                                    \
    }                                                                     \
    return ret;

int ftruncate(int fd, off_t len) { FROM_OFFSET_DIRTY(real_ftruncate(fd, len), fd, len) }
int ftruncate64(int fd, off64_t len) { FROM_OFFSET_DIRTY(real_ftruncate64(fd, len), fd, len) }
int fallocate(int fd, int mode, off_t off, off_t len) {
    FROM_OFFSET_DIRTY(real_fallocate(fd, mode, off, len), fd, off)
}
int fallocate64(int fd, int mode, off64_t off, off64_t len) {
    FROM_OFFSET_DIRTY(real_fallocate64(fd, mode, off, len), fd, off)
}
int posix_fallocate(int fd, off_t off, off_t len) {
    FROM_OFFSET_DIRTY(real_posix_fallocate(fd, off, len), fd, off)
}
int posix_fallocate64(int fd, off64_t off, off64_t len) {
    FROM_OFFSET_DIRTY(real_posix_fallocate64(fd, off, len), fd, off)
}
ssize_t copy_file_range(int in, off64_t *in_off, int out, off64_t *out_off, size_t len,
                        unsigned int flags) {
    FROM_OFFSET_DIRTY(real_copy_file_range(in, in_off, out, out_off, len, flags), out, 0)
}
ssize_t sendfile(int out, int in, off_t *off, size_t len) {
    FROM_OFFSET_DIRTY(real_sendfile(out, in, off, len), out, 0)
}
ssize_t sendfile64(int out, int in, off64_t *off, size_t len) {
    FROM_OFFSET_DIRTY(real_sendfile64(out, in, off, len), out, 0)
}
ssize_t splice(int in, off64_t *in_off, int out, off64_t *out_off, size_t len, unsigned int flags) {
    FROM_OFFSET_DIRTY(real_splice(in, in_off, out, out_off, len, flags), out, 0)
}

static void after_truncate_path(const char *path, int ret, uint64_t len) {
    if (ret != 0 || !cfg.enabled)
        return;
    int saved = errno;
    int fd = real_open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct fdinfo c;
    if (fd >= 0) {
        /* classify() caches by descriptor: this temporary one must not stay cached. */
        if (classify(fd, &c))
            mark_dirty(&c, len, TO_EOF);
        forget_fd(fd);
        real_close(fd);
    }
    errno = saved;
}

int truncate(const char *path, off_t len) {
    resolve();
    int ret = real_truncate(path, len);
    after_truncate_path(path, ret, (uint64_t)len);
    return ret;
}

int truncate64(const char *path, off64_t len) {
    resolve();
    int ret = real_truncate64(path, len);
    after_truncate_path(path, ret, (uint64_t)len);
    return ret;
}

/* A shared writable mapping can change any byte without a call we see: from then on
 * every fsync of that file copies it whole (msync alone is not modelled). */
static void after_mmap(void *p, int prot, int flags, int fd) {
    if (p == MAP_FAILED || fd < 0 || !(flags & MAP_SHARED) || !(prot & PROT_WRITE) || !cfg.enabled)
        return;
    int saved = errno;
    struct fdinfo c;
    if (classify(fd, &c))
        mark_mapped(&c);
    errno = saved;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    resolve();
    void *p = real_mmap(addr, len, prot, flags, fd, off);
    after_mmap(p, prot, flags, fd);
    return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off) {
    resolve();
    void *p = real_mmap64(addr, len, prot, flags, fd, off);
    after_mmap(p, prot, flags, fd);
    return p;
}

int fsync(int fd) {
    resolve();
    model_sync(fd);
    return real_fsync(fd);
}

int fdatasync(int fd) {
    resolve();
    model_sync(fd);
    return real_fdatasync(fd);
}

void sync(void) {
    resolve();
    if (cfg.enabled) {
        int saved = errno;
        sync_everything();
        errno = saved;
    }
    real_sync();
}

int syncfs(int fd) {
    resolve();
    struct stat st;
    if (cfg.enabled && fstat(fd, &st) == 0 && st.st_dev == cfg.dev) {
        int saved = errno;
        sync_everything();
        errno = saved;
    }
    return real_syncfs(fd);
}

/* Opening with O_TRUNC empties the file: not durable until an fsync either. */
static void after_open(int fd, int flags) {
    if (fd < 0)
        return;
    int saved = errno;
    forget_fd(fd);
    struct fdinfo c;
    if ((flags & O_TRUNC) && classify(fd, &c))
        mark_dirty(&c, 0, TO_EOF);
    errno = saved;
}

static mode_t open_mode(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

#define OPEN_LIKE(call)                          \
    resolve();                                   \
    va_list ap;                                  \
    va_start(ap, flags);                         \
    mode_t mode = open_mode(flags, ap);          \
    va_end(ap);                                  \
    int fd = (call);                             \
    after_open(fd, flags);                       \
    return fd;

int open(const char *path, int flags, ...) { OPEN_LIKE(real_open(path, flags, mode)) }
int open64(const char *path, int flags, ...) { OPEN_LIKE(real_open64(path, flags, mode)) }
int openat(int dir, const char *path, int flags, ...) {
    OPEN_LIKE(real_openat(dir, path, flags, mode))
}
int openat64(int dir, const char *path, int flags, ...) {
    OPEN_LIKE(real_openat64(dir, path, flags, mode))
}

int creat(const char *path, mode_t mode) {
    resolve();
    int fd = real_creat(path, mode);
    after_open(fd, O_CREAT | O_WRONLY | O_TRUNC);
    return fd;
}

int creat64(const char *path, mode_t mode) {
    resolve();
    int fd = real_creat64(path, mode);
    after_open(fd, O_CREAT | O_WRONLY | O_TRUNC);
    return fd;
}

/* The _FORTIFY_SOURCE entry points of open, used by programs built with it. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dir, const char *path, int flags);
int __openat64_2(int dir, const char *path, int flags);

int __open_2(const char *path, int flags) {
    resolve();
    int fd = real___open_2(path, flags);
    after_open(fd, flags);
    return fd;
}

int __open64_2(const char *path, int flags) {
    resolve();
    int fd = real___open64_2(path, flags);
    after_open(fd, flags);
    return fd;
}

int __openat_2(int dir, const char *path, int flags) {
    resolve();
    int fd = real___openat_2(dir, path, flags);
    after_open(fd, flags);
    return fd;
}

int __openat64_2(int dir, const char *path, int flags) {
    resolve();
    int fd = real___openat64_2(dir, path, flags);
    after_open(fd, flags);
    return fd;
}

int close(int fd) {
    resolve();
    if (cfg.enabled) {
        int saved = errno;
        forget_fd(fd);
        errno = saved;
    }
    return real_close(fd);
}

int dup2(int old, int new_fd) {
    resolve();
    int ret = real_dup2(old, new_fd);
    if (ret >= 0 && cfg.enabled) {
        int saved = errno;
        forget_fd(ret);
        errno = saved;
    }
    return ret;
}

int dup3(int old, int new_fd, int flags) {
    resolve();
    int ret = real_dup3(old, new_fd, flags);
    if (ret >= 0 && cfg.enabled) {
        int saved = errno;
        forget_fd(ret);
        errno = saved;
    }
    return ret;
}
