import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One fuzz target's entry point: bytes in, nothing out. It must never crash, hang or allocate without bound;
/// every refusal of bad input is a thrown (and swallowed) error.
public typealias FuzzEntryPoint = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

#if FUZZING
// libFuzzer's driver, linked in by `-sanitize=fuzzer` (tools/fuzz.sh builds with `-DFUZZING`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: FuzzEntryPoint) -> CInt
#endif

/// The `main` of every fuzz executable.
///
/// Built by tools/fuzz.sh (`-sanitize=fuzzer,address -DFUZZING`) it hands the command line to libFuzzer
/// (`LLVMFuzzerRunDriver`), so all of libFuzzer's flags work. Built plainly (`swift build`) it runs each file
/// named on the command line (folders: every file inside, recursively) through the same entry point once, which is
/// how a crash file is replayed outside the fuzzer.
public enum FuzzDriver {
    public static func main(_ entry: FuzzEntryPoint) -> Never {
        #if FUZZING
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, entry))
        #else
        let args = Array(CommandLine.arguments.dropFirst())
        if args.isEmpty || args.contains("--help") || args.contains("-h") {
            let name = (CommandLine.arguments.first.map { ($0 as NSString).lastPathComponent }) ?? "fuzz"
            print("usage: \(name) <files or folders...>: runs each file once through the fuzz entry point "
                  + "(build with tools/fuzz.sh to fuzz)")
            exit(args.isEmpty ? 64 : 0)
        }
        var count = 0
        for path in args {
            for file in FuzzCorpus.files(at: path) {
                guard let data = FileManager.default.contents(atPath: file) else {
                    FileHandle.standardError.write(Data("cannot read \(file)\n".utf8))
                    exit(1)
                }
                run(entry, data)
                count += 1
            }
        }
        print("ran \(count) input(s)")
        exit(0)
        #endif
    }

    /// Runs `data` through `entry` (as libFuzzer would: a pointer and a length, the bytes nowhere else).
    public static func run(_ entry: FuzzEntryPoint, _ data: Data) {
        let copy = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 1)
        defer { copy.deallocate() }
        data.copyBytes(to: copy.assumingMemoryBound(to: UInt8.self), count: data.count)
        _ = entry(copy.assumingMemoryBound(to: UInt8.self), data.count)
    }
}

/// Corpus files: a file itself, or every regular file under a folder (sorted, recursive, hidden files skipped).
public enum FuzzCorpus {
    public static func files(at path: String) -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [] }
        guard isDir.boolValue else { return [path] }
        let items = (FileManager.default.enumerator(atPath: path)?.allObjects as? [String]) ?? []
        return items.sorted().compactMap { rel in
            guard !(rel as NSString).lastPathComponent.hasPrefix(".") else { return nil }
            let full = (path as NSString).appendingPathComponent(rel)
            var d: ObjCBool = false
            return FileManager.default.fileExists(atPath: full, isDirectory: &d) && !d.boolValue ? full : nil
        }
    }
}
