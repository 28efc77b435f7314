import CKernels

/// Which implementation of the hand-vectorised inner loops runs.
///
/// `CKernels` holds AVX-512 versions of some hot loops (depthwise convolution planes, max-pool
/// planes), compiled per function for that instruction set and used only when the CPU has it.
/// The Swift kernels are the fallback, and tests compare the two on many geometries.
enum KernelDispatch {
    /// False forces the Swift kernels (tests only; not thread-safe to flip while kernels run).
    nonisolated(unsafe) static var allowVectorKernels = true

    /// True when the AVX-512 kernels may run on this CPU.
    static var avx512: Bool { allowVectorKernels && dk_has_avx512() != 0 }
}
