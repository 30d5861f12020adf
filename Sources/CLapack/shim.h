#ifndef TRAFFIC_CLAPACK_SHIM_H
#define TRAFFIC_CLAPACK_SHIM_H
#include <stdlib.h>
#include <lapacke.h>

/// LAPACK_ROW_MAJOR / LAPACK_COL_MAJOR are macros: one function that solves the least-squares
/// problem min ||A x - b|| by SVD (dgelsd) on column-major data, so Swift needs no macro.
/// `a` is m×n (overwritten), `b` has max(m, n) rows (the solution lands in its first n).
/// Returns LAPACK's info (0: success, > 0: the SVD did not converge); `rank` receives the
/// effective rank under `rcond`.
static inline int traffic_dgelsd(int m, int n, double *a, double *b, double rcond, int *rank) {
    double *s = (double *)malloc(sizeof(double) * (size_t)(m < n ? m : n));
    if (!s) return -1000;
    lapack_int r = 0;
    lapack_int info = LAPACKE_dgelsd(LAPACK_COL_MAJOR, m, n, 1, a, m, b, m > n ? m : n, s, rcond, &r);
    free(s);
    *rank = (int)r;
    return (int)info;
}
#endif
