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
        // Headers of OpenBLAS's CBLAS interface, found with pkg-config `openblas`
        // (never `blas`, which may resolve to the slow reference BLAS). The module
        // map links nothing: DenseKit loads libopenblas at run time with dlopen,
        // after choosing OPENBLAS_CORETYPE (see Kernels/BLAS/BLASLoader.swift).
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // libpng / libjpeg decode and PNG encode. Every setjmp/longjmp stays in C.
        .target(
            name: "CImageCodecs",
            linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg"), .linkedLibrary("z")]
        ),
        .target(
            name: "DenseKit",
            dependencies: ["CBLAS", "CImageCodecs"],
            swiftSettings: [.swiftLanguageMode(.v5)],
            linkerSettings: [.linkedLibrary("dl")]
        ),
        .executableTarget(
            name: "densekit",
            dependencies: ["DenseKit", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "DenseKitTests",
            dependencies: ["DenseKit"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
    ]
)
