/* SPDX-License-Identifier: MIT */
/*
 * Running on several machines under MPI (docs/mpi.md).
 *
 * A program started by mpirun or srun calls mmcl_mpi_init() first and
 * mmcl_mpi_finalize() last; in between, mmcl_embed(), mmcl_infoloss() and
 * mmcl_align() called on every rank with the same arguments share the
 * tiles of the output among the ranks, and rank 0 writes the one output
 * (the same bytes as a run on one machine); mmcl_train() called so shares
 * the drawing of the sample, and every rank returns the model of a run on
 * one machine (the caller saves it on rank 0). A program started without
 * a launcher runs as one rank, with or without MPI in the build.
 */
#ifndef MMCL_MPI_H
#define MMCL_MPI_H

#include "mmcl/context.h"
#include "mmcl/error.h"
#include "mmcl/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** 1 when the library was built with MPI, else 0. */
MMCL_API int mmcl_mpi_built(void);

/**
 * Initialises MPI when the program was started by a launcher (mpirun:
 * OMPI_COMM_WORLD_SIZE; srun or another PMI launcher: PMI_SIZE or
 * PMIX_RANK in the environment); without one, nothing is done and the
 * program is one rank. Fails, saying why, when it was started as several
 * processes and cannot run as them: a library built without MPI, or an
 * MPI that sees a different number of processes than the launcher started
 * (srun without the PMI plugin of the MPI library). @p argc and @p argv
 * are passed to MPI_Init_thread (may be NULL). Call once, from the main
 * thread, before any other mmcl call.
 */
MMCL_API mmcl_status mmcl_mpi_init(mmcl_context *ctx, int *argc, char ***argv);

/** This process's rank (0 without MPI). */
MMCL_API int mmcl_mpi_rank(void);

/** The number of ranks (1 without MPI). */
MMCL_API int mmcl_mpi_size(void);

/**
 * Every rank calls this at the same point with its own status @p st:
 * returns MMCL_OK when every rank is fine. Otherwise rank 0 returns its own
 * error, or the first failing rank's ("rank 2: ..."), and the other ranks
 * return an error too (their own, or "stopped: rank N failed"), so that a
 * check made on one rank (the output, on rank 0) stops every rank before
 * the work. With one rank, returns @p st.
 */
MMCL_API mmcl_status mmcl_mpi_agree(mmcl_context *ctx, mmcl_status st);

/**
 * Ends MPI if mmcl_mpi_init() started it. After a failed distributed
 * operation the other ranks may be gone, and MPI is not waited for: the
 * launcher ends the job. Safe to call when MPI was never started.
 */
MMCL_API void mmcl_mpi_finalize(void);

#ifdef __cplusplus
}
#endif

#endif /* MMCL_MPI_H */
