import ArgumentParser
import DenseKit
import Foundation

/// `densekit parity <folder>`: runs every golden case below the folder and prints
/// `PASS|FAIL|SKIP <case> max_abs=<..> max_rel=<..>` per case and a closing
/// `N passed, M failed, K skipped`. Exit code 1 on any failure.
struct ParityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity", abstract: "Check DenseKit against golden reference cases.")

    @Argument(help: "A folder of golden cases (searched recursively) or one case file.") var folder: String
    @Option(help: "Only cases whose name contains this text.") var filter: String?
    @Option(help: "Threads for DenseKit kernels and OpenBLAS.") var threads: Int?

    func validate() throws { try validateThreads(threads) }

    func run() throws {
        var failed = false
        try runReportingErrors {
            try BLAS.ensureLoaded()
            if let threads { Threading.threads = threads }
            let results = try ParityRunner.run(folder: folder, filter: filter) { r in
                print(r.line)
                fflush(stdout)
            }
            print(ParityRunner.summary(results))
            failed = results.contains { $0.status == .fail }
            if results.isEmpty { throw ParityError.noCases(folder) }
        }
        if failed { throw ExitCode(1) }
    }
}
