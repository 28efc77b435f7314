// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "DenseKit",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "DenseKit", targets: ["DenseKit"]),
        .executable(name: "densekit", targets: ["densekit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Headers of OpenBLAS's own CBLAS interface (openblas-pthread/cblas.h, never
        // the generic cblas.h that may belong to the slow reference BLAS). Nothing
        // is linked, on purpose: OpenBLAS picks its kernels when it is loaded, and
        // Debian's 0.3.21 picks slow SSE3 ones on recent CPUs. DenseKit sets
        // OPENBLAS_CORETYPE from the CPU's features and then loads the library
        // with dlopen (Kernels/BLAS/BLAS.swift). A `pkgConfig: "openblas"` here
        // would make SwiftPM link -lopenblas and load it before any of our code
        // runs, so the Makefile's `deps` step checks `pkg-config --exists openblas`.
        .systemLibrary(
            name: "CBLAS",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // libpng / libjpeg decode and PNG encode. Every setjmp/longjmp stays in C.
        .target(
            name: "CImageCodecs",
            linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg"), .linkedLibrary("z")]
        ),
        // Hand-vectorised inner loops (AVX-512 by per-function target attributes, chosen at
        // run time; the Swift kernels run when a CPU lacks the instructions).
        .target(name: "CKernels"),
        .target(
            name: "DenseKit",
            dependencies: ["CBLAS", "CImageCodecs", "CKernels"],
            swiftSettings: [.swiftLanguageMode(.v5)],
            linkerSettings: [.linkedLibrary("dl")]
        ),
        .executableTarget(
            name: "densekit",
            dependencies: ["DenseKit", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // Hostile-input fuzzing (tools/fuzz.sh): the shared target bodies and driver, and one executable per
        // target. Plain builds make corpus replayers (`FuzzImage file...`); tools/fuzz.sh adds
        // `-sanitize=fuzzer,address -DFUZZING` on the command line (no unsafe flags here).
        .target(
            name: "FuzzSupport",
            dependencies: ["DenseKit"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .executableTarget(name: "FuzzImage", dependencies: ["FuzzSupport"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .executableTarget(name: "FuzzSafeTensors", dependencies: ["FuzzSupport"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .executableTarget(name: "FuzzModelConfig", dependencies: ["FuzzSupport"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .executableTarget(name: "FuzzInspect", dependencies: ["FuzzSupport"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(
            name: "DenseKitTests",
            dependencies: ["DenseKit", "FuzzSupport"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
    ]
)
