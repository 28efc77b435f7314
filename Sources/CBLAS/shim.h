// OpenBLAS's CBLAS declarations (types and enums only). Nothing is linked:
// DenseKit resolves the functions with dlsym after choosing the core type.
#if __has_include(<openblas-pthread/cblas.h>)
#include <openblas-pthread/cblas.h>
#elif __has_include(<openblas-openmp/cblas.h>)
#include <openblas-openmp/cblas.h>
#elif __has_include(<openblas/cblas.h>)
#include <openblas/cblas.h>
#else
#include <cblas.h>
#endif
