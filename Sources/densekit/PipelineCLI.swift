import ArgumentParser
import DenseKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Shared plumbing of `segment`, `depth` and `normals`: model lookup, input listing, output naming, the checks
/// made before any image is decoded, and writing.
enum PipelineCLI {
    /// Suffixes of files this tool writes; skipped when a folder is listed.
    static let outputSuffixes = [".labels.png", ".overlay.png", ".depth.png", ".depth16.png", ".normals.png",
                                 ".scores.npy", ".depth.npy", ".depth.pfm", ".normals.npy"]

    /// The default pixel limit of `--max-pixels` (stored width x height), as ``ImageDecodeOptions``.
    static let defaultMaxPixels = ImageDecodeOptions().maxPixels

    /// The model path: `-m`, or the first `*.safetensors` (sorted) in `Models/` that serves `use`
    /// (see ``ModelCapabilities/defaultModel(in:for:)``).
    static func modelPath(_ given: String?, for use: ModelCapabilities.Use = .segmentation) throws -> String {
        if let given { return given }
        do { return try ModelCapabilities.defaultModel(in: "Models", for: use) } catch {
            throw ValidationFailure("no model given and \(error); pass -m <model.safetensors>")
        }
    }

    /// Loads a model with `make`, making sure the error names the file.
    static func loadModel<T>(_ path: String, _ make: (String) throws -> T) throws -> T {
        do { return try make(path) } catch {
            let text = "\(error)"
            throw ValidationFailure(text.contains(path) ? text : "model \(path): \(text)")
        }
    }

    /// Files named, and the PNG / JPEG files of folders named (sorted, not recursive). A file named twice
    /// (also through its folder) is processed once.
    static func images(_ args: [String]) throws -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        func add(_ p: String) {
            let key = (p as NSString).standardizingPath
            if seen.insert(key).inserted { out.append(p) }
        }
        for a in args {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: a, isDirectory: &isDir), isDir.boolValue {
                let names: [String]
                do { names = try FileManager.default.contentsOfDirectory(atPath: a).sorted() } catch {
                    throw ImageError.unreadableFile(path: a, reason: "cannot list the folder")
                }
                let exts = ["png", "jpg", "jpeg"]
                for n in names where exts.contains((n as NSString).pathExtension.lowercased())
                    && !outputSuffixes.contains(where: { n.lowercased().hasSuffix($0) }) {
                    add((a as NSString).appendingPathComponent(n))
                }
            } else {
                add(a)
            }
        }
        guard !out.isEmpty else { throw ValidationFailure("no images found in \(args.joined(separator: ", "))") }
        return out
    }

    /// `outDir/<image stem><suffix>`.
    static func output(_ image: String, _ outDir: String, _ suffix: String) -> String {
        (outDir as NSString).appendingPathComponent(stem(image) + suffix)
    }

    /// The file name without folder and extension (`a/x.jpg` -> `x`).
    static func stem(_ image: String) -> String {
        PathText.stem(image)
    }

    /// Refuses a run in which two different images would write the same output file (`a/x.jpg` and `b/x.png`
    /// both give `x.labels.png`), before anything is loaded or written, even with `--force`.
    static func refuseDuplicateStems(_ images: [String], outDir: String) throws {
        var first: [String: String] = [:]
        for p in images {
            if let other = first[stem(p)] {
                throw ValidationFailure("\(other) and \(p) would write the same outputs (\(stem(p)).*) in \(outDir): "
                                        + "rename one or run them with different -o folders")
            }
            first[stem(p)] = p
        }
    }

    /// Refuses an image from its header, before it is decoded: more pixels than `maxPixels`, or a size the model
    /// cannot take (`check` gets the upright width and height), then decodes it.
    static func decode(_ path: String, maxPixels: Int, check: (Int, Int) throws -> Void) throws -> RGBImage {
        let info = try ImageDecoder.probe(path: path)
        guard info.storedWidth > 0, info.storedHeight > 0 else {
            throw ImageError.corruptData(path: path, reason: "image has zero width or height")
        }
        if info.pixelCount > maxPixels {
            throw ImageError.tooLarge(path: path, width: info.storedWidth, height: info.storedHeight, limit: maxPixels)
        }
        try check(info.width, info.height)
        return try ImageDecoder.decode(path: path, options: ImageDecodeOptions(maxPixels: maxPixels)).image
    }

    /// Checks that no output exists unless `force`.
    static func refuseExisting(_ outputs: [String], force: Bool) throws {
        if !force, let e = outputs.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            throw ValidationFailure("cannot write \(e): the file exists (pass --force to overwrite)")
        }
    }

    /// Runs `body` per image, with progress on stderr when there are several; errors are reported per image.
    /// - Returns: the number of failed images.
    static func forEach(_ images: [String], _ body: (String) throws -> Void) -> Int {
        var failed = 0
        for (i, path) in images.enumerated() {
            if images.count > 1 { printError("[\(i + 1)/\(images.count)] \(path)") }
            do { try body(path) } catch {
                printError("densekit: error: \(path): \(error)")
                failed += 1
            }
        }
        return failed
    }

    /// Ends a batch: exit code 1 when any image failed. Each failure already printed its own
    /// line, so a single-image run adds nothing; a batch adds the count.
    static func finish(failed: Int, of total: Int) throws {
        guard failed > 0 else { return }
        if total == 1 { throw ExitCode(1) }
        throw ValidationFailure("\(failed) of \(total) image(s) failed")
    }

    /// A JSON string literal (DenseKit's one JSON quoting rule).
    static func quote(_ s: String) -> String { JSONValue.quote(s) }

    /// A float for JSON/text (6 significant digits).
    static func num(_ x: Double) -> String { x.isFinite ? String(format: "%.6g", x) : "null" }

    /// The exit codes, as `--help` and the README give them.
    static let exitCodes = "Exit codes: 0 every image done; 1 a failure (bad or unsuitable model, unreadable or too large image, "
        + "output exists or unwritable, duplicate output names: one line per problem on stderr, no partial file); "
        + "64 usage error (unknown option, bad option value)."
}

/// The output folder of a run: checked before the model runs, created only when the first file is written, and
/// removed again if this run created it and wrote nothing into it.
final class OutputFolder {
    let path: String
    /// The highest folder this run created (when it created any).
    private var createdRoot: String?

    /// Checks that `path` is a writable folder or can be created (its nearest existing ancestor is a writable
    /// folder); creates nothing.
    /// - Throws: `ImageError.unwritableOutput`.
    init(_ path: String) throws {
        self.path = path
        let fm = FileManager.default
        var p = (path as NSString).standardizingPath
        if p.isEmpty { p = "." }
        while true {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: p, isDirectory: &isDir) {
                guard isDir.boolValue else {
                    throw ImageError.unwritableOutput(path: path, reason: p == (path as NSString).standardizingPath
                                                      ? "not a folder" : "\(p) is not a folder")
                }
                guard access(p, W_OK | X_OK) == 0 else {
                    throw ImageError.unwritableOutput(path: path, reason: "\(p): \(String(cString: strerror(errno)))")
                }
                return
            }
            let parent = PathText.parent(p)
            if parent == p { return }
            p = parent.isEmpty ? "." : parent
        }
    }

    /// Creates the folder (and missing parents) when absent, remembering what was created.
    /// - Throws: `ImageError.unwritableOutput`.
    func ensure() throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDir) {
            if !isDir.boolValue { throw ImageError.unwritableOutput(path: path, reason: "not a folder") }
            return
        }
        var missing = (path as NSString).standardizingPath
        while true {
            let parent = PathText.parent(missing)
            if parent.isEmpty || parent == missing || fm.fileExists(atPath: parent) { break }
            missing = parent
        }
        do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw ImageError.unwritableOutput(path: path, reason: "cannot create the output folder")
        }
        if createdRoot == nil { createdRoot = missing }
    }

    /// Writes every `(path, bytes)` atomically (after all were encoded), creating the folder first when needed;
    /// removes the ones written (when they were new) if a later one fails.
    func writeAll(_ files: [(String, Data)], force: Bool) throws {
        try ensure()
        var done: [String] = []
        do {
            for (p, d) in files {
                let existed = FileManager.default.fileExists(atPath: p)
                try AtomicFile.write(d, to: p, overwrite: force)
                if !existed { done.append(p) }
            }
        } catch {
            for p in done { try? FileManager.default.removeItem(atPath: p) }
            throw error
        }
    }

    /// Removes the folders this run created when they are empty (deepest first, up to the highest created one).
    func removeIfUnused() {
        guard let root = createdRoot else { return }
        let fm = FileManager.default
        var p = (path as NSString).standardizingPath
        while true {
            guard let items = try? fm.contentsOfDirectory(atPath: p), items.isEmpty else { return }
            guard (try? fm.removeItem(atPath: p)) != nil else { return }
            if p == root { break }
            let parent = PathText.parent(p)
            if parent == p || parent.isEmpty { break }
            p = parent
        }
        createdRoot = nil
    }
}

/// An error shown as one line.
struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Path pieces without `NSString.deletingLastPathComponent` / `lastPathComponent`, which trap on some
/// one-character paths in swift-corelibs-foundation (e.g. `-o q` crashed).
enum PathText {
    /// The parent: `"a/b"` -> `"a"`, `"a"` -> `""`, `"/a"` -> `"/"`, `"/"` -> `"/"`; trailing slashes ignored.
    static func parent(_ p: String) -> String {
        var s = Substring(p)
        while s.count > 1 && s.hasSuffix("/") { s = s.dropLast() }
        guard let i = s.lastIndex(of: "/") else { return "" }
        return i == s.startIndex ? "/" : String(s[..<i])
    }

    /// The last component without its extension: `"dir/x.tar.png"` -> `"x.tar"`, `"q"` -> `"q"`, `".hidden"` -> `".hidden"`.
    static func stem(_ p: String) -> String {
        var s = Substring(p)
        while s.count > 1 && s.hasSuffix("/") { s = s.dropLast() }
        let name = s.lastIndex(of: "/").map { s[s.index(after: $0)...] } ?? s
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return String(name) }
        return String(name[..<dot])
    }
}
