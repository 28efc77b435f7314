// OpenBLAS's CBLAS declarations (types and enums). Nothing is linked: DenseKit
// resolves the functions with dlsym after choosing the OpenBLAS core type.
#include <cblas.h>
