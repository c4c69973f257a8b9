/* SPDX-License-Identifier: MIT */
/*
 * MPI: starting it (the public mmcl_mpi_* calls), and the tiles of one
 * output shared among the ranks, with the resume journal (dist_internal.h,
 * docs/mpi.md). Only the main thread of a rank calls MPI
 * (MPI_THREAD_FUNNELED); its worker threads hand tiles and packed results
 * to it through a lock.
 */
#define _POSIX_C_SOURCE 200809L /* fdatasync, ftruncate, fileno, nanosleep */
#define _DEFAULT_SOURCE         /* syscall */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#ifdef MMCL_HAVE_MPI
#include <mpi.h>
#endif

#include <cpl_error.h>
#include <cpl_string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#include "mmcl/mpi.h"

#include "blas_threads.h"
#include "chain_internal.h"
#include "context_internal.h"
#include "dist_internal.h"
#include "options_internal.h"

/* ---- starting MPI -------------------------------------------------------- */

static int world_rank = 0, world_size = 1;
static int mpi_started = 0; /* by mmcl_mpi_init */
static int mpi_broken = 0;  /* a distributed job failed: peers may be gone */

/* The number of processes the launcher started, from its environment:
 * > 0 when told, 0 for a launcher that does not say (PMIx), -1 for none. */
static int
launched_size(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return atoi(v) > 0 ? atoi(v) : 0;
    }
    return getenv("PMIX_RANK") ? 0 : -1;
}

int
mmcl_mpi_built(void)
{
#ifdef MMCL_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

mmcl_status
mmcl_mpi_init(mmcl_context *ctx, int *argc, char ***argv)
{
    int n = launched_size();
    if (n < 0 || mpi_started)
        return MMCL_OK;
#ifdef MMCL_HAVE_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) !=
        MPI_SUCCESS)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "started by an MPI launcher, but MPI could not "
                           "be initialised");
    mpi_started = 1;
    /* Failures are reported as statuses, not by aborting the job. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (provided < MPI_THREAD_FUNNELED)
        return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                           "the MPI library does not allow threads "
                           "(MPI_THREAD_FUNNELED)");
    if (n > 0 && n != world_size) {
        /* Alone (a singleton), MPI can still be finalized, which removes
         * its session files; with peers that disagree, it may hang. */
        mpi_broken = world_size > 1;
        return mmcl__error(
            ctx, MMCL_ERR_UNSUPPORTED,
            "the launcher started %d processes, but MPI sees %d: the "
            "launcher and the MPI library do not work together (with "
            "srun, give --mpi=pmix or the plugin of your MPI)",
            n, world_size);
    }
    return MMCL_OK;
#else
    (void)argc;
    (void)argv;
    /* The rank the launcher gave, so that only the first process of the
     * refused launch says why. */
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    if (!r)
        r = getenv("PMI_RANK");
    if (n > 1 && r)
        world_rank = atoi(r);
    if (n > 1)
        return mmcl__error(
            ctx, MMCL_ERR_UNSUPPORTED,
            "started by an MPI launcher as one of %d processes, but this "
            "mmcl was built without MPI: each process would compute and "
            "write the whole output. Build mmcl with MPI (cmake "
            "-DMMCL_MPI=ON, with Open MPI installed) or run it once, "
            "without the launcher",
            n);
    return MMCL_OK;
#endif
}

int
mmcl_mpi_rank(void)
{
    return world_rank;
}

int
mmcl_mpi_size(void)
{
    return world_size;
}

void
mmcl_mpi_finalize(void)
{
#ifdef MMCL_HAVE_MPI
    if (mpi_started && !mpi_broken)
        MPI_Finalize();
#endif
    mpi_started = 0;
}

int
mmcl__dist_active(void)
{
    return world_size > 1;
}

#ifdef MMCL_HAVE_MPI
/* Waits for @p req, sleeping between tests. A rank waiting for the others
 * (for rank 0 writing its last tiles and the statistics, or for a tile
 * being taken) leaves its core to those that work: Open MPI's blocking
 * calls poll at full speed, which on a node with as many ranks as cores
 * takes a core from rank 0's compression. */
/* With @p progress, a cancel (a signal: the launcher stopping the job)
 * is heard through it every 0.1 s: then MPI_ERR_OTHER. */
static int
wait_heard(MPI_Request *req, mmcl_progress_fn progress, void *progress_user,
           double at)
{
    for (int k = 0;; k++) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || done)
            return rc;
        if (progress && k % 500 == 499 &&
            !progress(world_rank == 0 ? at : 0.0, NULL, progress_user))
            return MPI_ERR_OTHER;
        struct timespec ts = {0, 200000}; /* 0.2 ms */
        nanosleep(&ts, NULL);
    }
}

static int
wait_sleeping(MPI_Request *req)
{
    return wait_heard(req, NULL, NULL, 0.0);
}
#endif

/* ---- messages ------------------------------------------------------------ */

enum {
    TAG_REQ = 11,   /* a worker of a rank wants a tile: (int) 0 */
    TAG_REPLY = 12, /* rank 0's answer: (int) first tile, (int) count; 0 = no more */
    TAG_TILE = 13,  /* a packed tile: header + bytes */
    TAG_DONE = 14   /* a rank has finished: done_msg */
};

enum { MSG_LEN = 1024 };

typedef struct done_msg {
    int status;
    char text[MSG_LEN];
    /* At the end of the tiles: the rank's account (account_debug). */
    int tiles;
    double wall_s, worker_s, main_s, commit_s, other_s;
} done_msg;

/* A rank's account of its share (CPL_DEBUG MMCL, printed by rank 0 for
 * every rank: the others print nothing; bench/bench_mpi.py reads it). */
static void
account_debug(int rank, const done_msg *m)
{
    CPLDebug("MMCL",
             "rank %d of %d: %d tiles computed, %.2f s of wall time; CPU "
             "seconds: workers %.2f, main thread %.2f (writing the tiles "
             "%.2f), other threads (GDAL's compression, MPI) %.2f",
             rank, world_size, m->tiles, m->wall_s, m->worker_s, m->main_s,
             m->commit_s, m->other_s);
}

/* A packed tile travels with its index in front. */
typedef struct tile_head {
    int64_t index;
    uint64_t size;
} tile_head;

mmcl_status
mmcl__dist_agree(mmcl_context *ctx, mmcl_status st)
{
    /* After a broken run the other ranks may be gone: nothing to wait for. */
    if (world_size < 2 || mpi_broken)
        return st;
#ifdef MMCL_HAVE_MPI
    done_msg mine = {0};
    mine.status = (int)st;
    if (st != MMCL_OK)
        snprintf(mine.text, sizeof(mine.text), "%s",
                 mmcl_context_errmsg(ctx));
    done_msg *all = NULL;
    if (world_rank == 0) {
        all = calloc((size_t)world_size, sizeof(*all));
        if (!all) {
            mpi_broken = 1;
            return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        }
    }
    int verdict[2] = {MMCL_OK, -1}; /* status, failing rank */
    MPI_Request req;
    int rc = MPI_Igather(&mine, (int)sizeof(mine), MPI_BYTE, all,
                         (int)sizeof(mine), MPI_BYTE, 0, MPI_COMM_WORLD, &req);
    if (rc == MPI_SUCCESS)
        rc = wait_sleeping(&req);
    if (world_rank == 0 && rc == MPI_SUCCESS)
        for (int r = 0; r < world_size; r++)
            if (all[r].status != MMCL_OK) {
                verdict[0] = all[r].status;
                verdict[1] = r;
                if (r > 0 && st == MMCL_OK)
                    mmcl__error(ctx, (mmcl_status)all[r].status,
                                "rank %d: %s", r, all[r].text);
                break;
            }
    free(all);
    if (rc == MPI_SUCCESS)
        rc = MPI_Ibcast(verdict, 2, MPI_INT, 0, MPI_COMM_WORLD, &req);
    if (rc == MPI_SUCCESS)
        rc = wait_sleeping(&req);
    if (rc != MPI_SUCCESS) {
        mpi_broken = 1;
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "MPI failed: the ranks could not agree");
    }
    if (st != MMCL_OK)
        return st;
    if (verdict[0] != MMCL_OK) {
        if (world_rank != 0)
            mmcl__error(ctx, MMCL_ERR_CANCELLED,
                        "stopped: rank %d failed (rank 0 reports why)",
                        verdict[1]);
        return world_rank != 0 ? MMCL_ERR_CANCELLED : (mmcl_status)verdict[0];
    }
    return MMCL_OK;
#else
    return st;
#endif
}

/* ---- the journal --------------------------------------------------------- */

static const char journal_magic[8] = {'M', 'M', 'C', 'L', 'J', 'R', 'N', '1'};

char *
mmcl__dist_journal_path(mmcl_context *ctx, const char *out)
{
    size_t n = strlen(out) + sizeof(".mmcl-journal");
    char *p = malloc(n);
    if (!p) {
        mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        return NULL;
    }
    snprintf(p, n, "%s.mmcl-journal", out);
    return p;
}

void
mmcl__dist_journal_remove(const char *path)
{
    if (path)
        remove(path);
}

/* FNV-1a, 64 bits: a torn or altered record does not pass. */
static uint64_t
checksum(const void *buf, size_t n)
{
    const unsigned char *b = buf;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

typedef struct journal {
    FILE *fp;
    const char *path;
    int n_since_sync;
} journal;

/*
 * Opens the journal for appending. An existing one of the same job (its
 * fingerprint) is read: its records, in tile order from tile 0, each
 * checked, are given to @p replay until the first that is missing, torn
 * or wrong; the file is cut there. Sets *n_done to the tiles replayed.
 */
static mmcl_status
journal_open(mmcl_context *ctx, journal *j, const char *path,
             const char *fingerprint, int n_tiles,
             int (*replay)(mmcl_context *ctx, int index, const void *buf,
                           size_t size, void *user),
             void *user, int *n_done)
{
    *n_done = 0;
    j->path = path;
    uint64_t flen = strlen(fingerprint);
    FILE *fp = fopen(path, "r+b");
    if (!fp && errno != ENOENT)
        return mmcl__error(ctx, MMCL_ERR_IO, "cannot open the journal '%s': %s",
                           path, strerror(errno));
    if (!fp) {
        fp = fopen(path, "w+b");
        if (!fp)
            return mmcl__error(ctx, MMCL_ERR_IO,
                               "cannot create the journal '%s': %s", path,
                               strerror(errno));
        if (fwrite(journal_magic, 1, 8, fp) != 8 ||
            fwrite(&flen, sizeof(flen), 1, fp) != 1 ||
            fwrite(fingerprint, 1, flen, fp) != flen || fflush(fp) != 0) {
            fclose(fp);
            remove(path);
            return mmcl__error(ctx, MMCL_ERR_IO,
                               "cannot write the journal '%s': %s", path,
                               strerror(errno));
        }
        j->fp = fp;
        return MMCL_OK;
    }
    char magic[8];
    uint64_t len = 0;
    char *fpr = NULL;
    int same = fread(magic, 1, 8, fp) == 8 &&
               memcmp(magic, journal_magic, 8) == 0 &&
               fread(&len, sizeof(len), 1, fp) == 1 && len == flen;
    if (same) {
        fpr = malloc(len + 1);
        same = fpr && fread(fpr, 1, len, fp) == len &&
               memcmp(fpr, fingerprint, len) == 0;
        free(fpr);
    }
    if (!same) {
        fclose(fp);
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "the journal '%s' is not one of this job (another "
                           "command, inputs, options or mmcl version wrote "
                           "it): remove it to start again from the first "
                           "tile",
                           path);
    }
    mmcl_status st = MMCL_OK;
    long good = ftell(fp);
    unsigned char *buf = NULL;
    size_t cap = 0;
    while (*n_done < n_tiles) {
        tile_head h;
        uint64_t sum;
        if (fread(&h, sizeof(h), 1, fp) != 1 || h.index != *n_done ||
            h.size == 0 || h.size > ((uint64_t)1 << 40))
            break;
        if (h.size > cap) {
            unsigned char *b = realloc(buf, (size_t)h.size);
            if (!b)
                break;
            buf = b;
            cap = (size_t)h.size;
        }
        if (fread(buf, 1, (size_t)h.size, fp) != h.size ||
            fread(&sum, sizeof(sum), 1, fp) != 1 ||
            sum != checksum(buf, (size_t)h.size))
            break;
        int r = replay(ctx, *n_done, buf, (size_t)h.size, user);
        if (r < 0)
            st = mmcl_context_errcode(ctx);
        if (r <= 0)
            break;
        ++*n_done;
        good = ftell(fp);
    }
    free(buf);
    if (st == MMCL_OK &&
        (fseek(fp, good, SEEK_SET) != 0 || ftruncate(fileno(fp), good) != 0))
        st = mmcl__error(ctx, MMCL_ERR_IO, "cannot write the journal '%s': %s",
                         path, strerror(errno));
    if (st != MMCL_OK) {
        fclose(fp);
        return st;
    }
    j->fp = fp;
    return MMCL_OK;
}

static mmcl_status
journal_append(mmcl_context *ctx, journal *j, int index, const void *buf,
               size_t size)
{
    if (!j->fp)
        return MMCL_OK;
    tile_head h = {index, size};
    uint64_t sum = checksum(buf, size);
    int ok = fwrite(&h, sizeof(h), 1, j->fp) == 1 &&
             fwrite(buf, 1, size, j->fp) == size &&
             fwrite(&sum, sizeof(sum), 1, j->fp) == 1 && fflush(j->fp) == 0;
    /* A killed process loses nothing flushed; a crashed machine, at most
     * the tiles since the last sync. */
    if (ok && ++j->n_since_sync >= 32) {
        ok = fdatasync(fileno(j->fp)) == 0;
        j->n_since_sync = 0;
    }
    if (!ok)
        return mmcl__error(ctx, MMCL_ERR_IO,
                           "cannot write the journal '%s': %s", j->path,
                           strerror(errno));
    return MMCL_OK;
}

static void
journal_close(journal *j)
{
    if (j->fp)
        fclose(j->fp);
    j->fp = NULL;
}

static void
fingerprint_add_file(char ***fp, const char *what, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0)
        *fp = CSLAddString(*fp, CPLSPrintf("%s=%s %lld %lld.%09ld", what, path,
                                          (long long)sb.st_size,
                                          (long long)sb.st_mtim.tv_sec,
                                          (long)sb.st_mtim.tv_nsec));
    else
        *fp = CSLAddString(*fp, CPLSPrintf("%s=%s", what, path));
}

char *
mmcl__dist_fingerprint(const mmcl_options *o, const char *const *optical,
                       size_t n_optical, const char *const *sar, size_t n_sar,
                       const char *model, char **extra)
{
    char **fp = NULL;
    const char *op = mmcl__options_operation(o);
    fp = CSLAddString(fp, CPLSPrintf("operation=%s", op));
    fp = CSLAddString(fp, CPLSPrintf("mmcl=%s", mmcl_version()));
    if (model)
        fingerprint_add_file(&fp, "model", model);
    for (size_t i = 0; i < n_optical; i++)
        fingerprint_add_file(&fp, "optical", optical[i]);
    for (size_t i = 0; sar && i < n_sar; i++)
        fingerprint_add_file(&fp, "sar", sar[i]);
    /* The options that change the pixels (not the threads, the progress,
     * whether to overwrite or resume). */
    size_t n = 0;
    const mmcl_option_def *defs = mmcl_option_defs(op, &n);
    for (size_t i = 0; i < n; i++) {
        const char *k = defs[i].name;
        if (strcmp(k, "THREADS") == 0 || strcmp(k, "OVERWRITE") == 0 ||
            strcmp(k, "RESUME") == 0)
            continue;
        if (defs[i].type == MMCL_OPT_LIST) {
            char **l = mmcl__opt_list(o, k);
            for (int j = 0; l && l[j]; j++)
                fp = CSLAddString(fp, CPLSPrintf("%s=%s", k, l[j]));
        } else {
            const char *v = mmcl__opt_str(o, k);
            fp = CSLAddString(fp, CPLSPrintf("%s=%s", k, v ? v : ""));
        }
    }
    for (int i = 0; extra && extra[i]; i++)
        fp = CSLAddString(fp, extra[i]);
    size_t len = 1;
    for (int i = 0; fp && fp[i]; i++)
        len += strlen(fp[i]) + 1;
    char *s = malloc(len);
    if (s) {
        s[0] = '\0';
        for (int i = 0; fp && fp[i]; i++) {
            strcat(s, fp[i]);
            strcat(s, "\n");
        }
    }
    CSLDestroy(fp);
    return s;
}

/* ---- the run ------------------------------------------------------------- */

typedef struct packed {
    struct packed *next;
    size_t size; /* of the bytes after the head */
    tile_head head;
    /* the tile's bytes follow */
} packed;

static void *
packed_bytes(packed *p)
{
    return (unsigned char *)p + sizeof(packed);
}

typedef struct dist dist;

/* What rank 0 may hold of finished tiles waiting for their turn. */
#define WINDOW_BYTES ((size_t)512 << 20)

typedef struct dworker {
    dist *d;
    mmcl_context *ctx;
    thrd_t thread;
    void *state;
} dworker;

struct dist {
    const mmcl__dist_job *job;
    const mmcl__chain *chain;
    int width, height, tile, n_tiles, n_workers;
    mtx_t lock;
    cnd_t changed;
    int stop;              /* a failure or a cancel: hand out no more */
    mmcl_status status;    /* the first failure */
    mmcl_context *err_ctx; /* where its message is */
    int n_running;         /* local workers */
    /* Every rank: the tiles handed to this rank, in order, for its
     * workers. */
    int *queue;
    int q_head, q_tail;
    int no_more; /* no more tiles will come */
    /* rank 0 */
    int next_tile, next_commit, window;
    unsigned char *assigned; /* (n_tiles) 0, or handed out: */
#define ON_RANK_N 1 /* to another rank */
#define ON_RANK_0 2 /* to rank 0's workers */
#define COPIED 3    /* ... and a copy to another rank */
    packed **ready; /* (n_tiles) computed, waiting for their commit */
    /* other ranks */
    packed *out_head, *out_tail; /* computed, to send to rank 0 */
    /* Where the time went (CPL_DEBUG MMCL, bench/bench_mpi.py): tiles
     * computed here, the workers' CPU seconds, rank 0's main thread's CPU
     * seconds writing the tiles. */
    int n_computed;
    double worker_s, commit_s;
};

static void
dist_fail(dist *d, mmcl_context *ctx, mmcl_status st)
{
    /* With the lock held. */
    if (!d->stop) {
        d->stop = 1;
        d->status = st;
        d->err_ctx = ctx;
    }
    cnd_broadcast(&d->changed);
}

/* The next tile for a worker of this rank, or -1. With the lock held. */
static int
take_tile(dist *d)
{
    for (;;) {
        if (d->stop)
            return -1;
        if (d->q_head < d->q_tail)
            return d->queue[d->q_head++];
        if (d->no_more)
            return -1;
        /* The main thread hands out (rank 0) or asks for more. */
        cnd_broadcast(&d->changed);
        cnd_wait(&d->changed, &d->lock);
    }
}

/* Tiles [first, first + n) to this rank's workers; n <= 0: no more. With
 * the lock held. */
static void
hand_over(dist *d, int first, int n)
{
    if (d->no_more)
        return;
    for (int i = 0; i < n; i++) {
        d->queue[d->q_tail++] = first + i;
        if (d->job->handed)
            d->job->handed(first + i, d->job->tiles.user);
    }
    if (n <= 0) {
        d->no_more = 1;
        if (d->job->handed)
            d->job->handed(-1, d->job->tiles.user);
    }
    cnd_broadcast(&d->changed);
}

/* Whether this rank's workers should be handed more: fewer tiles queued
 * than workers (the last ones computing, the next ones queued while the
 * reader reads ahead). With the lock held. */
static int
wants_tiles(const dist *d)
{
    return !d->stop && !d->no_more && d->q_tail - d->q_head < d->n_workers;
}

/* Rank 0: moves next_tile past the tiles already handed out. With the
 * lock held. */
static void
skip_assigned(dist *d)
{
    while (d->next_tile < d->n_tiles && d->assigned[d->next_tile])
        d->next_tile++;
}

/*
 * Rank 0: the next run of tiles for another rank (or for rank 0 alone),
 * [*first, *first + n). Runs are consecutive tiles, so that a rank reads
 * neighbouring windows (their shared input blocks decoded once, a tile's
 * top halo kept from the tile above), and shrink as the tiles run out
 * (guided self-scheduling: half of what is left, shared among every
 * worker), so that the ranks finish together. Returns 0 when the window
 * allows none now, -1 when every tile is handed out (or the run stopped).
 * With the lock held.
 */
static int
grant(dist *d, int *first)
{
    skip_assigned(d);
    if (d->stop || d->next_tile >= d->n_tiles)
        return -1;
    int end = d->next_commit + d->window;
    if (end > d->n_tiles)
        end = d->n_tiles;
    int room = end - d->next_tile;
    if (room <= 0)
        return 0;
    int left = d->n_tiles - d->next_tile;
    int n = (left + 2 * world_size * d->n_workers - 1) /
            (2 * world_size * d->n_workers);
    if (n > room / (2 * world_size))
        n = room / (2 * world_size);
    if (n < 1)
        n = 1;
    *first = d->next_tile;
    int k = 0;
    while (k < n && !d->assigned[*first + k])
        d->assigned[*first + k++] = world_size > 1 ? ON_RANK_N : ON_RANK_0;
    skip_assigned(d);
    return k;
}

/*
 * Rank 0 with other ranks: one tile for one of its own workers, the next
 * one (after the runs of the others). Rank 0 also writes every tile: its
 * workers give way to the writer (mmcl__dist_behind_writer), so they
 * compute with what the writer leaves, one tile at a time; a tile they
 * are late with is given to another rank too (grant_copy). Returns as
 * grant().
 */
static int
grant_one(dist *d, int *first)
{
    skip_assigned(d);
    if (d->stop || d->next_tile >= d->n_tiles)
        return -1;
    if (d->next_tile >= d->next_commit + d->window)
        return 0;
    *first = d->next_tile;
    d->assigned[d->next_tile] = ON_RANK_0;
    skip_assigned(d);
    return 1;
}

/*
 * Rank 0, for another rank that asked while grant() has nothing to give
 * now: the first tile rank 0's own workers hold and have not finished,
 * given a second time (the commit may be waiting for it: rank 0's
 * workers give way to the writer, and on a loaded node may be slow).
 * Whichever copy comes first is written; a tile's bytes do not depend on
 * who computed it. Returns 1, or 0 when there is none.
 */
static int
grant_copy(dist *d, int *first)
{
    for (int i = d->next_commit; i < d->next_tile; i++) {
        if (d->assigned[i] == ON_RANK_0 && !d->ready[i]) {
            d->assigned[i] = COPIED;
            *first = i;
            return 1;
        }
    }
    return 0;
}

void
mmcl__dist_behind_writer(void)
{
#ifdef __linux__
    /* A thread's nice value is its own on Linux. */
    if (world_rank == 0 && world_size > 1)
        (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
#endif
}

static int
dworker_main(void *arg)
{
    dworker *w = arg;
    mmcl__dist_behind_writer();
    dist *d = w->d;
    const mmcl__dist_job *job = d->job;
    const mmcl__tile_job *tj = &job->tiles;
    mmcl__chain_adopt(d->chain);
    void *state = tj->start ? tj->start(w->ctx, tj->user) : NULL;
    mtx_lock(&d->lock);
    w->state = state;
    if (tj->start && !state)
        dist_fail(d, w->ctx, mmcl_context_errcode(w->ctx));
    for (;;) {
        int index = take_tile(d);
        if (index < 0)
            break;
        mtx_unlock(&d->lock);

        mmcl__tile t;
        mmcl__tile_at(&t, d->width, d->height, d->tile, index);
        mmcl_status st = tj->work(w->ctx, state, &t, tj->user);
        packed *p = NULL;
        if (st == MMCL_OK) {
            size_t n = job->packed_size(&t, tj->user);
            p = malloc(sizeof(packed) + n);
            if (!p)
                st = mmcl__error(w->ctx, MMCL_ERR_NO_MEMORY,
                                 "out of memory for tile %d", index);
            else {
                p->next = NULL;
                p->size = n;
                p->head.index = index;
                p->head.size = n;
                job->pack(state, &t, packed_bytes(p), tj->user);
            }
        }

        mtx_lock(&d->lock);
        if (st != MMCL_OK) {
            dist_fail(d, w->ctx, st);
            break;
        }
        d->n_computed++;
        if (world_rank == 0) {
            /* The copy given to another rank may have come first. */
            if (index < d->next_commit || d->ready[index])
                free(p);
            else
                d->ready[index] = p;
        } else {
            if (d->out_tail)
                d->out_tail->next = p;
            else
                d->out_head = p;
            d->out_tail = p;
        }
        cnd_broadcast(&d->changed);
    }
    d->n_running--;
    d->worker_s += mmcl__thread_seconds();
    cnd_broadcast(&d->changed);
    mtx_unlock(&d->lock);
    /* The state is stopped by the runner, after the join, on one thread
     * (a stop may add up figures of the job). */
    return 0;
}

static double
seconds_now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The CPU seconds of every thread of the process. */
static double
process_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Waits on the lock for a change, or a short while when messages may come
 * from other ranks (MPI is polled by this thread). */
static void
wait_a_little(dist *d)
{
    if (world_size < 2) {
        cnd_wait(&d->changed, &d->lock);
        return;
    }
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    ts.tv_nsec += 500000; /* 0.5 ms */
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    cnd_timedwait(&d->changed, &d->lock, &ts);
}

typedef struct replay_user {
    const mmcl__dist_job *job;
    int width, height, tile;
} replay_user;

/* 1: tile @p index written from the journal; 0: not this job's tile (the
 * journal is cut there); -1: the write failed. */
static int
replay_tile(mmcl_context *ctx, int index, const void *buf, size_t size,
            void *user)
{
    replay_user *u = user;
    mmcl__tile t;
    mmcl__tile_at(&t, u->width, u->height, u->tile, index);
    if (size != u->job->packed_size(&t, u->job->tiles.user))
        return 0;
    return u->job->commit_packed(ctx, &t, buf, u->job->tiles.user) == MMCL_OK
               ? 1
               : -1;
}

#ifdef MMCL_HAVE_MPI
/* Rank 0: a tile on its way from another rank. It is received without
 * blocking, so that a rank killed in the middle of a send does not hold
 * rank 0 (which must still hear a cancel and remove its output). */
/* Rank 0's account of what each rank sent it (CPL_DEBUG MMCL), for the
 * benchmark of the traffic (bench/bench_mpi.py). */
typedef struct traffic {
    long long tiles, bytes, requests;
} traffic;

typedef struct inbox {
    int busy;
    int src, count;
    packed *p;
    MPI_Request req;
} inbox;

/* Files the tile @p p (complete) for its commit. */
static void
tile_arrived(dist *d, packed *p)
{
    mtx_lock(&d->lock);
    int64_t i = p->head.index;
    if (d->stop || i < d->next_commit || i >= d->n_tiles || d->ready[i] ||
        p->head.size != p->size) {
        free(p);
    } else {
        d->ready[i] = p;
    }
    mtx_unlock(&d->lock);
}

/* Rank 0: answers what came from the other ranks. *n_done counts the
 * ranks that have finished; *pending holds the ranks (one entry per
 * request) waiting for a tile the window does not allow yet. Called
 * without the lock. */
static mmcl_status
serve(mmcl_context *ctx, dist *d, inbox *in, traffic *tr, int *n_done,
      int *pending, int *n_pending, int *any)
{
    for (;;) {
        if (in->busy) {
            int done = 0;
            if (MPI_Test(&in->req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
                return mmcl__error(ctx, MMCL_ERR_IO,
                                   "MPI failed receiving a tile from rank %d",
                                   in->src);
            if (!done)
                break;
            in->busy = 0;
            *any = 1;
            tr[in->src].tiles++;
            tr[in->src].bytes += in->count;
            in->p->next = NULL;
            in->p->size = (size_t)in->count - sizeof(tile_head);
            tile_arrived(d, in->p);
            in->p = NULL;
        }
        int flag = 0;
        MPI_Status ms;
        if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag,
                       &ms) != MPI_SUCCESS)
            return mmcl__error(ctx, MMCL_ERR_IO, "MPI failed (probe)");
        if (!flag)
            break;
        *any = 1;
        int src = ms.MPI_SOURCE;
        if (ms.MPI_TAG == TAG_REQ) {
            int dummy;
            MPI_Recv(&dummy, 1, MPI_INT, src, TAG_REQ, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
            pending[(*n_pending)++] = src;
            tr[src].requests++;
        } else if (ms.MPI_TAG == TAG_TILE) {
            int count = 0;
            MPI_Get_count(&ms, MPI_BYTE, &count);
            if (count < (int)sizeof(tile_head))
                return mmcl__error(ctx, MMCL_ERR_IO,
                                   "a short tile message from rank %d", src);
            packed *p = malloc(sizeof(packed) + (size_t)count);
            if (!p)
                return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                                   "out of memory for a tile from rank %d",
                                   src);
            /* The head is received into place in front of the bytes. */
            in->busy = 1;
            in->src = src;
            in->count = count;
            in->p = p;
            if (MPI_Irecv(&p->head, count, MPI_BYTE, src, TAG_TILE,
                          MPI_COMM_WORLD, &in->req) != MPI_SUCCESS) {
                in->busy = 0;
                in->p = NULL;
                free(p);
                return mmcl__error(ctx, MMCL_ERR_IO,
                                   "MPI failed receiving a tile from rank %d",
                                   src);
            }
        } else if (ms.MPI_TAG == TAG_DONE) {
            done_msg m;
            MPI_Recv(&m, (int)sizeof(m), MPI_BYTE, src, TAG_DONE,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            ++*n_done;
            account_debug(src, &m);
            if (m.status != MMCL_OK) {
                mtx_lock(&d->lock);
                if (!d->stop) {
                    m.text[MSG_LEN - 1] = '\0';
                    mmcl__error(ctx, (mmcl_status)m.status, "rank %d: %s", src,
                                m.text);
                    dist_fail(d, ctx, (mmcl_status)m.status);
                }
                mtx_unlock(&d->lock);
            }
        } else {
            return mmcl__error(ctx, MMCL_ERR_IO,
                               "unexpected MPI message (tag %d) from rank %d",
                               ms.MPI_TAG, src);
        }
    }
    /* Answer the requests the window allows (all of them once stopped):
     * a run of tiles, (first, count), count 0 for no more. */
    int kept = 0;
    for (int k = 0; k < *n_pending; k++) {
        int answer[2] = {-1, 0};
        mtx_lock(&d->lock);
        int n = grant(d, &answer[0]);
        if (n <= 0 && !d->stop && grant_copy(d, &answer[0]))
            n = 1;
        mtx_unlock(&d->lock);
        if (n == 0) {
            pending[kept++] = pending[k];
            continue;
        }
        answer[1] = n > 0 ? n : 0;
        *any = 1;
        if (MPI_Send(answer, 2, MPI_INT, pending[k], TAG_REPLY,
                     MPI_COMM_WORLD) != MPI_SUCCESS)
            return mmcl__error(ctx, MMCL_ERR_IO,
                               "MPI failed answering rank %d", pending[k]);
    }
    *n_pending = kept;
    return MMCL_OK;
}
#endif

/* Rank 0's main thread: the other ranks' requests and tiles, the commits
 * in tile order (with the journal), progress. */
static mmcl_status
root_loop(mmcl_context *ctx, dist *d, journal *jr, mmcl_progress_fn progress,
          void *progress_user, double p0, double p1)
{
    const mmcl__dist_job *job = d->job;
    int n_done = 0, reported = -1;
    double polled = 0;
#ifdef MMCL_HAVE_MPI
    inbox in = {0};
    traffic *tr = NULL;
    int n_pending = 0;
#endif
    int *pending = NULL;
    double cancel_at = 0; /* after a cancel: when to stop waiting for peers */
    if (world_size > 1) {
        /* A rank has at most n_workers + 1 requests out at once. */
        pending = calloc((size_t)world_size * (size_t)(d->n_workers + 2),
                         sizeof(int));
#ifdef MMCL_HAVE_MPI
        tr = calloc((size_t)world_size, sizeof(*tr));
        if (!tr) {
            free(pending);
            pending = NULL;
        }
#endif
        if (!pending) {
            mtx_lock(&d->lock);
            dist_fail(d, ctx, mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                                          "out of memory"));
            mtx_unlock(&d->lock);
        }
    }
    mtx_lock(&d->lock);
    for (;;) {
        int any = 0;
        /* Commits, in tile order. */
        while (!d->stop && d->next_commit < d->n_tiles &&
               d->ready[d->next_commit]) {
            packed *p = d->ready[d->next_commit];
            d->ready[d->next_commit] = NULL;
            mtx_unlock(&d->lock);
            mmcl__tile t;
            mmcl__tile_at(&t, d->width, d->height, d->tile,
                          (int)p->head.index);
            double c0 = mmcl__thread_seconds();
            mmcl_status st =
                job->commit_packed(ctx, &t, packed_bytes(p), job->tiles.user);
            if (st == MMCL_OK)
                st = journal_append(ctx, jr, t.index, packed_bytes(p),
                                    p->size);
            free(p);
            d->commit_s += mmcl__thread_seconds() - c0;
            mtx_lock(&d->lock);
            if (st != MMCL_OK) {
                dist_fail(d, ctx, st);
                break;
            }
            d->next_commit++;
            cnd_broadcast(&d->changed);
            any = 1;
        }
        /* Progress, also polled while waiting, so that a cancel (a
         * signal) is heard while a tile is late. */
        double now = seconds_now();
        if (progress && !d->stop &&
            (d->next_commit != reported || now > polled + 0.1)) {
            reported = d->next_commit;
            polled = now;
            double f = (double)reported / d->n_tiles;
            mtx_unlock(&d->lock);
            int go = progress(p0 + (p1 - p0) * f, NULL, progress_user);
            mtx_lock(&d->lock);
            if (!go && !d->stop) {
                mmcl__error(ctx, MMCL_ERR_CANCELLED,
                            "cancelled by the caller after %d of %d tiles",
                            d->next_commit, d->n_tiles);
                dist_fail(d, ctx, MMCL_ERR_CANCELLED);
            }
        }
#ifdef MMCL_HAVE_MPI
        if (world_size > 1 && pending) {
            mtx_unlock(&d->lock);
            mmcl_status st =
                serve(ctx, d, &in, tr, &n_done, pending, &n_pending, &any);
            mtx_lock(&d->lock);
            if (st != MMCL_OK) {
                dist_fail(d, ctx, st);
                mpi_broken = 1;
                break;
            }
        }
#endif
        /* Rank 0's own workers are handed tiles after the other ranks'
         * requests are answered. */
        int others_waiting = 0;
#ifdef MMCL_HAVE_MPI
        others_waiting = n_pending > 0;
#endif
        if (wants_tiles(d) && !others_waiting) {
            int first = 0;
            int n = world_size > 1 ? grant_one(d, &first) : grant(d, &first);
            if (n != 0) {
                hand_over(d, first, n);
                any = 1;
            }
        }
        if (world_size > 1 && d->stop && d->status == MMCL_ERR_CANCELLED &&
            d->err_ctx == ctx) {
            /* A cancel here (a signal, which the launcher follows with a
             * SIGKILL a second later): the other ranks are told, but may
             * be ending too; wait for them a little, then leave, so that
             * the caller removes its temporary output in time. */
            if (cancel_at == 0)
                cancel_at = now + 0.3;
            else if (now > cancel_at) {
                mpi_broken = 1;
                break;
            }
        }
        int others_done = world_size < 2 || n_done == world_size - 1 ||
                          !pending;
        if (d->n_running == 0 && others_done &&
            (d->stop || d->next_commit == d->n_tiles))
            break;
        if (!any)
            wait_a_little(d);
    }
    mtx_unlock(&d->lock);
#ifdef MMCL_HAVE_MPI
    /* Each rank sends a request (an int) per run of tiles and each tile;
     * receives an answer (two ints) per request. Rank 0's tiles do not
     * travel. */
    for (int r = 1; tr && r < world_size; r++)
        CPLDebug("MMCL",
                 "rank %d: %lld tiles, %lld bytes of tiles and %lld requests "
                 "received from it, %lld answers sent to it",
                 r, tr[r].tiles, tr[r].bytes, tr[r].requests, tr[r].requests);
    free(tr);
#endif
    free(pending);
    return MMCL_OK;
}

/* Another rank's main thread: asks rank 0 for tiles for its workers and
 * sends it what they computed. */
static void
rank_loop(mmcl_context *ctx, dist *d, mmcl_progress_fn progress,
          void *progress_user)
{
#ifdef MMCL_HAVE_MPI
    int outstanding = 0;
    /* Tiles on their way to rank 0, sent without blocking: the thread
     * goes on asking for tiles, and sleeps while rank 0 has not taken
     * them yet (a blocking send would poll a core at full speed). */
    enum { N_SENDING = 4 };
    packed *sending[N_SENDING] = {NULL};
    MPI_Request send_req[N_SENDING];
    int n_sending = 0;
    mtx_lock(&d->lock);
    for (;;) {
        int any = 0;
        mtx_unlock(&d->lock);
        for (int k = 0; k < N_SENDING; k++) {
            int done = 0;
            if (!sending[k])
                continue;
            int rc = MPI_Test(&send_req[k], &done, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS || done) {
                free(sending[k]);
                sending[k] = NULL;
                n_sending--;
                any = 1;
            }
            if (rc != MPI_SUCCESS) {
                mtx_lock(&d->lock);
                dist_fail(d, ctx,
                          mmcl__error(ctx, MMCL_ERR_IO,
                                      "MPI failed sending a tile to rank 0"));
                mtx_unlock(&d->lock);
            }
        }
        mtx_lock(&d->lock);
        while (d->out_head && n_sending < N_SENDING) {
            packed *p = d->out_head;
            d->out_head = p->next;
            if (!d->out_head)
                d->out_tail = NULL;
            mtx_unlock(&d->lock);
            int k = 0;
            while (sending[k])
                k++;
            int rc = MPI_Isend(&p->head, (int)(sizeof(tile_head) + p->size),
                               MPI_BYTE, 0, TAG_TILE, MPI_COMM_WORLD,
                               &send_req[k]);
            if (rc == MPI_SUCCESS) {
                sending[k] = p;
                n_sending++;
            } else {
                free(p);
            }
            mtx_lock(&d->lock);
            if (rc != MPI_SUCCESS)
                dist_fail(d, ctx,
                          mmcl__error(ctx, MMCL_ERR_IO,
                                      "MPI failed sending a tile to rank 0"));
            any = 1;
        }
        /* One request at a time, for a run of tiles, when the workers
         * are about to run out. */
        if (outstanding == 0 && d->n_running > 0 && wants_tiles(d)) {
            int zero = 0;
            outstanding++;
            mtx_unlock(&d->lock);
            int rc = MPI_Send(&zero, 1, MPI_INT, 0, TAG_REQ, MPI_COMM_WORLD);
            mtx_lock(&d->lock);
            if (rc != MPI_SUCCESS) {
                outstanding--;
                dist_fail(d, ctx, mmcl__error(ctx, MMCL_ERR_IO,
                                              "MPI failed asking rank 0 "
                                              "for tiles"));
            }
            any = 1;
        }
        mtx_unlock(&d->lock);
        if (outstanding > 0) {
            int flag = 0;
            MPI_Iprobe(0, TAG_REPLY, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
            if (flag) {
                int run[2] = {-1, 0};
                MPI_Recv(run, 2, MPI_INT, 0, TAG_REPLY, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE);
                outstanding--;
                any = 1;
                mtx_lock(&d->lock);
                if (run[1] < 0 || run[0] < 0 || run[0] > d->n_tiles - run[1])
                    run[1] = 0;
                hand_over(d, run[0], run[1]);
                mtx_unlock(&d->lock);
            }
        }
        /* A signal here stops this rank; rank 0 hears of it below. */
        if (progress && !progress(0.0, NULL, progress_user)) {
            mtx_lock(&d->lock);
            if (!d->stop)
                dist_fail(d, ctx,
                          mmcl__error(ctx, MMCL_ERR_CANCELLED,
                                      "cancelled on rank %d", world_rank));
            mtx_unlock(&d->lock);
        }
        mtx_lock(&d->lock);
        if (d->n_running == 0 && !d->out_head && outstanding == 0 &&
            n_sending == 0)
            break;
        if (!any)
            wait_a_little(d);
    }
    mtx_unlock(&d->lock);
#else
    (void)ctx;
    (void)d;
    (void)progress;
    (void)progress_user;
#endif
}

mmcl_status
mmcl__run_tiles_dist(mmcl_context *ctx, int width, int height, int tile,
                     int n_threads, const mmcl__dist_job *job,
                     mmcl_progress_fn progress, void *progress_user,
                     double p0, double p1)
{
    if (width <= 0 || height <= 0 || tile <= 0)
        return mmcl__error(ctx, MMCL_ERR_INVALID_ARG,
                           "invalid tiling: %d x %d raster, tile %d", width,
                           height, tile);
    dist d = {0};
    d.job = job;
    d.chain = mmcl__chain_current();
    d.width = width;
    d.height = height;
    d.tile = tile;
    d.n_tiles = ((width + tile - 1) / tile) * ((height + tile - 1) / tile);
    d.n_workers = n_threads < 1 ? 1 : n_threads;
    /* Tiles handed out ahead of the next commit: enough to keep every
     * worker of every rank busy while one slow tile is outstanding, and
     * runs of tiles long enough for the ranks to read neighbouring
     * windows; few enough that rank 0 holds a bounded number of finished
     * tiles (WINDOW_BYTES, or the minimum for small outputs). */
    d.window = 4 * d.n_workers * world_size + 4;
    mmcl__tile t0;
    mmcl__tile_at(&t0, width, height, tile, 0);
    size_t tile_bytes = job->packed_size(&t0, job->tiles.user) + 1;
    if ((size_t)d.window < WINDOW_BYTES / tile_bytes)
        d.window = (int)(WINDOW_BYTES / tile_bytes > (size_t)d.n_tiles
                             ? (size_t)d.n_tiles
                             : WINDOW_BYTES / tile_bytes);
    if (mtx_init(&d.lock, mtx_plain) != thrd_success)
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "cannot create a mutex");
    if (cnd_init(&d.changed) != thrd_success) {
        mtx_destroy(&d.lock);
        return mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                           "cannot create a condition variable");
    }
    journal jr = {0};
    dworker *workers = NULL;
    int n_started = 0;
    double wall0 = seconds_now(), main0 = mmcl__thread_seconds();
    double proc0 = process_seconds();
    mmcl_status st = job->prior;
    if (st != MMCL_OK) {
    } else {
        d.queue = calloc((size_t)d.n_tiles, sizeof(int));
        if (world_rank == 0) {
            d.ready = calloc((size_t)d.n_tiles, sizeof(packed *));
            d.assigned = calloc((size_t)d.n_tiles, 1);
        }
        if (!d.queue || (world_rank == 0 && (!d.ready || !d.assigned)))
            st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    /* The journal's tiles are written first; the ranks then start after
     * them (rank 0 hands out the rest). */
    if (st == MMCL_OK && world_rank == 0 && job->journal) {
        replay_user u = {job, width, height, tile};
        int done = 0;
        st = journal_open(ctx, &jr, job->journal, job->fingerprint, d.n_tiles,
                          replay_tile, &u, &done);
        d.next_tile = d.next_commit = done;
        if (st == MMCL_OK && done > 0)
            CPLDebug("MMCL", "resumed: %d of %d tiles from the journal '%s'",
                     done, d.n_tiles, job->journal);
    }
    if (st == MMCL_OK) {
        workers = calloc((size_t)d.n_workers, sizeof(*workers));
        if (!workers)
            st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    }
    if (st != MMCL_OK) {
        /* The others still ask rank 0 for tiles and report: go through the
         * loops with the failure set, so that they stop too. */
        d.stop = 1;
        d.status = st;
        d.err_ctx = ctx;
    }

    mmcl__blas_threads_enter(1);
    d.n_running = 0;
    for (int i = 0; workers && i < d.n_workers && !d.stop; i++) {
        workers[i].d = &d;
        workers[i].ctx = mmcl_context_create();
        mtx_lock(&d.lock);
        d.n_running++;
        mtx_unlock(&d.lock);
        if (!workers[i].ctx ||
            thrd_create(&workers[i].thread, dworker_main, &workers[i]) !=
                thrd_success) {
            mtx_lock(&d.lock);
            d.n_running--;
            dist_fail(&d, ctx, mmcl__error(ctx, MMCL_ERR_NO_MEMORY,
                                           "cannot start a thread"));
            mtx_unlock(&d.lock);
            mmcl_context_destroy(workers[i].ctx);
            workers[i].ctx = NULL;
            break;
        }
        n_started++;
    }
    if (world_rank == 0)
        root_loop(ctx, &d, &jr, progress, progress_user, p0, p1);
    else
        rank_loop(ctx, &d, progress, progress_user);
    for (int i = 0; i < n_started; i++)
        thrd_join(workers[i].thread, NULL);
    if (job->tiles.stop)
        for (int i = 0; i < n_started; i++)
            job->tiles.stop(workers[i].state, job->tiles.user);
    mmcl__blas_threads_leave(1);
    journal_close(&jr);
    done_msg account = {0};
    account.tiles = d.n_computed;
    account.wall_s = seconds_now() - wall0;
    account.worker_s = d.worker_s;
    account.main_s = mmcl__thread_seconds() - main0;
    account.commit_s = d.commit_s;
    account.other_s = process_seconds() - proc0 - d.worker_s -
                      account.main_s;
    if (world_rank == 0)
        account_debug(0, &account);

    if (d.stop) {
        st = d.status;
        if (d.err_ctx && d.err_ctx != ctx)
            mmcl__error_copy(ctx, d.err_ctx);
    }
#ifdef MMCL_HAVE_MPI
    if (world_size > 1 && !mpi_broken) {
        if (world_rank != 0) {
            done_msg m = account;
            m.status = (int)st;
            if (st != MMCL_OK)
                snprintf(m.text, sizeof(m.text), "%s",
                         mmcl_context_errmsg(ctx));
            MPI_Send(&m, (int)sizeof(m), MPI_BYTE, 0, TAG_DONE,
                     MPI_COMM_WORLD);
        }
        /* Everyone learns how the job ended; then every rank answers,
         * after rank 0 has written the last tile. A rank that died after
         * sending its last tile (a kill, a node lost) never answers: rank
         * 0 does not put an output in place for a job its launcher will
         * report as failed, and leaves (removing its temporary output)
         * when the launcher stops it. */
        int verdict = (int)st, ok = 0, all_ok = 0;
        MPI_Request req;
        if (MPI_Ibcast(&verdict, 1, MPI_INT, 0, MPI_COMM_WORLD, &req) !=
                MPI_SUCCESS ||
            wait_heard(&req, progress, progress_user, p1) != MPI_SUCCESS) {
            mpi_broken = 1;
        } else {
            ok = st == MMCL_OK && verdict == MMCL_OK;
            if (MPI_Iallreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN,
                               MPI_COMM_WORLD, &req) != MPI_SUCCESS ||
                wait_heard(&req, progress, progress_user, p1) !=
                    MPI_SUCCESS)
                mpi_broken = 1;
        }
        if (mpi_broken && st == MMCL_OK)
            st = mmcl__error(ctx, MMCL_ERR_CANCELLED,
                             "stopped before every rank confirmed the end "
                             "of the job");
        else if (world_rank != 0 && st == MMCL_OK && verdict != MMCL_OK)
            st = mmcl__error(ctx, MMCL_ERR_CANCELLED,
                             "stopped: the job failed (rank 0 reports why)");
        else if (st == MMCL_OK && !all_ok)
            st = mmcl__error(ctx, MMCL_ERR_CANCELLED,
                             "stopped: a rank did not confirm the end of "
                             "the job");
    }
#endif
    if (st == MMCL_OK && world_rank == 0 && progress &&
        !progress(p1, NULL, progress_user))
        st = mmcl__error(ctx, MMCL_ERR_CANCELLED, "cancelled by the caller");

    for (int i = 0; workers && i < d.n_workers; i++)
        mmcl_context_destroy(workers[i].ctx);
    free(workers);
    if (d.ready)
        for (int i = 0; i < d.n_tiles; i++)
            free(d.ready[i]);
    free(d.ready);
    free(d.assigned);
    free(d.queue);
    while (d.out_head) {
        packed *p = d.out_head;
        d.out_head = p->next;
        free(p);
    }
    cnd_destroy(&d.changed);
    mtx_destroy(&d.lock);
    return st;
}

/* ---- shards: work split by a fixed index, results shared ------------------ */

int
mmcl__dist_owns(int index)
{
    return index % world_size == world_rank;
}

mmcl_status
mmcl__dist_allgather(mmcl_context *ctx, const void *mine, size_t n,
                     unsigned char **all, size_t **offsets)
{
    *all = NULL;
    *offsets = calloc((size_t)world_size + 1, sizeof(size_t));
    mmcl_status st = MMCL_OK;
    if (!*offsets)
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    if (world_size < 2) {
        if (st == MMCL_OK && !(*all = malloc(n ? n : 1)))
            st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        if (st == MMCL_OK) {
            (*offsets)[1] = n;
            if (n)
                memcpy(*all, mine, n);
        }
        return st;
    }
#ifdef MMCL_HAVE_MPI
    long long mine_n = (long long)n;
    long long *sizes = calloc((size_t)world_size, sizeof(long long));
    int *counts = calloc((size_t)world_size, sizeof(int));
    int *displs = calloc((size_t)world_size, sizeof(int));
    if (st == MMCL_OK && (!sizes || !counts || !displs))
        st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
    if (st == MMCL_OK && n > (size_t)INT32_MAX)
        st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                         "%zu bytes of results on one rank, more than MPI "
                         "sends at once (2 GiB)",
                         n);
    /* Every rank is ready, or every rank stops here. */
    st = mmcl__dist_agree(ctx, st);
    if (st == MMCL_OK &&
        MPI_Allgather(&mine_n, 1, MPI_LONG_LONG, sizes, 1, MPI_LONG_LONG,
                      MPI_COMM_WORLD) != MPI_SUCCESS) {
        mpi_broken = 1;
        st = mmcl__error(ctx, MMCL_ERR_IO,
                         "MPI failed sharing the sizes of the results");
    }
    if (st == MMCL_OK) {
        size_t total = 0;
        for (int r = 0; r < world_size; r++) {
            (*offsets)[r] = total;
            total += (size_t)sizes[r];
        }
        (*offsets)[world_size] = total;
        /* MPI counts bytes in int: the displacements must fit. */
        mmcl_status mine_st = MMCL_OK;
        if (total > (size_t)INT32_MAX)
            mine_st = mmcl__error(ctx, MMCL_ERR_UNSUPPORTED,
                                  "the ranks' results are %zu bytes, more "
                                  "than MPI sends at once (2 GiB): draw a "
                                  "smaller sample",
                                  total);
        else if (!(*all = malloc(total ? total : 1)))
            mine_st = mmcl__error(ctx, MMCL_ERR_NO_MEMORY, "out of memory");
        for (int r = 0; r < world_size && mine_st == MMCL_OK; r++) {
            counts[r] = (int)sizes[r];
            displs[r] = (int)(*offsets)[r];
        }
        st = mmcl__dist_agree(ctx, mine_st);
    }
    if (st == MMCL_OK &&
        MPI_Allgatherv(mine, (int)n, MPI_BYTE, *all, counts, displs, MPI_BYTE,
                       MPI_COMM_WORLD) != MPI_SUCCESS) {
        mpi_broken = 1;
        st = mmcl__error(ctx, MMCL_ERR_IO,
                         "MPI failed sharing the ranks' results");
    }
    free(sizes);
    free(counts);
    free(displs);
    return st;
#else
    (void)mine;
    return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED, "built without MPI");
#endif
}

mmcl_status
mmcl__dist_fill_disjoint(mmcl_context *ctx, void *buf, size_t n)
{
    if (world_size < 2 || n == 0)
        return MMCL_OK;
#ifdef MMCL_HAVE_MPI
    if (mpi_broken)
        return mmcl__error(ctx, MMCL_ERR_IO, "MPI failed earlier in this job");
    /* Each byte was written by one rank and is 0 on the others: their
     * bitwise or is that byte, exactly. */
    const size_t chunk = (size_t)1 << 30;
    unsigned char *b = buf;
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        if (MPI_Allreduce(MPI_IN_PLACE, b + off, (int)len, MPI_UNSIGNED_CHAR,
                          MPI_BOR, MPI_COMM_WORLD) != MPI_SUCCESS) {
            mpi_broken = 1;
            return mmcl__error(ctx, MMCL_ERR_IO,
                               "MPI failed sharing the shards' results");
        }
    }
    return MMCL_OK;
#else
    (void)buf;
    return mmcl__error(ctx, MMCL_ERR_UNSUPPORTED, "built without MPI");
#endif
}

mmcl_status
mmcl_mpi_agree(mmcl_context *ctx, mmcl_status st)
{
    return mmcl__dist_agree(ctx, st);
}
