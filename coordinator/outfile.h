/*
 * outfile.h - a result file that is either written whole or not at all.
 *
 * The outputs (output.h: the summary JSON, the time series) write through it. A path that names
 * a regular file, or nothing yet, is written under a temporary name in the same folder
 * (".NAME.tmp-XXXXXX", so a reader listing the folder never takes it for a result) and renamed
 * over the path by st_outfile_commit, after fflush, fsync and fclose all succeeded: a reader sees
 * the old file or the whole new one, never a part, and a run that fails before the end leaves no
 * file behind (st_outfile_abort removes the temporary one). A path that exists and is not a
 * regular file (/dev/stdout, /dev/full, a FIFO) cannot be replaced: it is written in place, with
 * every write, the flush and the close checked the same way.
 *
 * Errors are ST_EIO (ST_ENOMEM when out of memory) with "LABEL PATH: what failed: strerror" in
 * err, LABEL being the flag that named the file ("--summary").
 *
 * Threading: one owner at a time. Ownership: st_outfile_open allocates; st_outfile_commit and
 * st_outfile_abort both release the object whatever they return.
 */
#ifndef ST_OUTFILE_H
#define ST_OUTFILE_H

#include <stddef.h>

typedef struct st_outfile st_outfile;

/* Opens path for writing (the temporary file is created now, so a folder that cannot be written
 * is found out before anything else happens). Returns 0 with *out, ST_EIO or ST_ENOMEM. */
int st_outfile_open(st_outfile **out, const char *label, const char *path, char *err,
                    size_t err_len);

/* Writes text (printf-style). Returns 0, or the errno of this or an earlier failed write (the
 * first one is kept: st_outfile_commit reports it and fails). */
int st_outfile_printf(st_outfile *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands what was written so far to the kernel (fflush). Returns 0 or the first errno, as above. */
int st_outfile_flush(st_outfile *f);

/* The path as given. */
const char *st_outfile_path(const st_outfile *f);

/* Flushes, syncs, closes and renames the file into place. On any failure the temporary file is
 * removed (the path keeps what it held before) and ST_EIO is returned with the reason in err.
 * Releases f. */
int st_outfile_commit(st_outfile *f, char *err, size_t err_len);

/* Closes and removes the temporary file without touching path. Releases f; NULL is a no-op. */
void st_outfile_abort(st_outfile *f);

#endif
