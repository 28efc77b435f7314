import DenseKit
print(BLAS.summary())
