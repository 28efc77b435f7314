import ArgumentParser
import DenseKit
import Foundation

/// `densekit`: the command-line shell over the DenseKit library.
///
/// Exit codes: 0 success; 1 bad input or failed operation (one line on stderr);
/// 64 usage error (bad flags or arguments).
@main
struct DenseKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "densekit",
        abstract: "Dense prediction (segmentation, depth, normals) on the CPU.",
        discussion: """
        Exit codes: 0 success; 1 bad input or failed operation (one line on stderr); \
        64 usage error.
        """,
        version: DenseKitVersion.string + "\n" + BLAS.summary(),
        subcommands: [InfoCommand.self, InspectCommand.self, ParityCommand.self, ProfileCommand.self, BenchCommand.self, DemoCommand.self, SegmentCommand.self, DepthCommand.self, NormalsCommand.self]
    )
}

/// Runs `body`, turning any thrown error into one line on stderr and exit code 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("densekit: error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// Writes a line to stderr.
func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
