// Debian's cblas.h (from libopenblas-*-dev) and LAPACKE; the running BLAS is picked by the libblas.so.3 alternative.
#include <cblas.h>
#include <lapacke.h>
