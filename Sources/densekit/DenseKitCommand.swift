import ArgumentParser
import DenseKit
import Foundation

/// `densekit`: the command-line shell over the DenseKit library.
///
/// Exit codes: 0 success; 1 bad input or failed operation (one line on stderr);
/// 64 usage error (bad flags or arguments). No other code is used (the README's table).
@main
struct DenseKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "densekit",
        abstract: "Dense prediction (segmentation, depth, normals) on the CPU.",
        discussion: """
        Exit codes: 0 success (also --help, --version); 1 bad input or failed operation: missing, corrupt or \
        too large image, damaged or unsuitable model, output exists or unwritable, duplicate output names, parity \
        failure (one line on stderr); 64 usage error: unknown subcommand or option, missing argument, bad option \
        value. No other code is used.
        """,
        version: DenseKitVersion.string + "\n" + BLAS.summary(),
        subcommands: [InfoCommand.self, InspectCommand.self, ParityCommand.self, ProfileCommand.self, BenchCommand.self, DemoCommand.self, SegmentCommand.self, DepthCommand.self, NormalsCommand.self, EvalCommand.self]
    )
}

/// Runs `body`, turning any thrown error into one line on stderr and exit code 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        printError("densekit: error: \(error)")
        throw ExitCode(1)
    }
}

/// Writes a line to stderr.
func printError(_ s: String) {
    FileHandle.standardError.write(Data((oneLine(s) + "\n").utf8))
}

/// `s` with control characters (newlines, escape sequences from file names or model
/// metadata) shown as `\xNN`, so an error is always one line and never drives the terminal.
func oneLine(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars {
        if u.value < 0x20 || u.value == 0x7f || (0x80..<0xa0).contains(u.value) {
            out += String(format: "\\x%02x", u.value)
        } else {
            out.unicodeScalars.append(u)
        }
    }
    return out
}
