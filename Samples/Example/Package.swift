// swift-tools-version:6.0
// A minimal program using DenseKit as a library, by path (the repository two folders up).
//   swift run --package-path Samples/Example segment-example Samples/chelsea.png [model.safetensors] [out.png]
import PackageDescription

let package = Package(
    name: "SegmentExample",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "DenseKit", path: "../..")],
    targets: [
        .executableTarget(
            name: "segment-example",
            dependencies: [.product(name: "DenseKit", package: "DenseKit")],
            path: "Sources/SegmentExample"
        ),
    ]
)
