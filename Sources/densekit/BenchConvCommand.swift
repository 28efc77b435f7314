import ArgumentParser
import DenseKit
import Foundation

/// `densekit bench conv`: convolution layers against a plain sgemm of the same M, N, K.
struct BenchConv: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conv", abstract: "Convolutions against plain sgemm.")
    @Option(help: "Timed repeats per row (median reported).") var repeats: Int = 10
    @Option(help: "Threads for DenseKit kernels and OpenBLAS.") var threads: Int?

    func validate() throws { try validateThreads(threads) }

    func run() throws {
        try runReportingErrors {
            try BLAS.ensureLoaded()
            if let threads { Threading.threads = threads }
            print(BLAS.summary())
            for row in ConvBenchmark.run(repeats: max(1, repeats)) { print(row.line) }
        }
    }
}
