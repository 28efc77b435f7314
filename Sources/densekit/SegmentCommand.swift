import ArgumentParser
import DenseKit
import Foundation

/// Shared plumbing of `segment`, `depth` and `normals`: model lookup, input listing, output naming and writing.
enum PipelineCLI {
    /// Suffixes of files this tool writes; skipped when a folder is listed.
    static let outputSuffixes = [".labels.png", ".overlay.png", ".depth.png", ".depth16.png", ".normals.png"]

    /// The model path: `-m` or the first `*.safetensors` (sorted) in `Models/`.
    static func modelPath(_ given: String?) throws -> String {
        if let given { return given }
        let dir = "Models"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        guard let first = names.filter({ $0.hasSuffix(".safetensors") }).sorted().first else {
            throw ValidationFailure("no model given and Models/ holds no .safetensors file: pass -m <model.safetensors> (see README, Models)")
        }
        return dir + "/" + first
    }

    /// Files named, and the PNG / JPEG files of folders named (sorted, not recursive).
    static func images(_ args: [String]) throws -> [String] {
        var out: [String] = []
        for a in args {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: a, isDirectory: &isDir), isDir.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: a).sorted()
                let exts = ["png", "jpg", "jpeg"]
                for n in names where exts.contains((n as NSString).pathExtension.lowercased())
                    && !outputSuffixes.contains(where: { n.lowercased().hasSuffix($0) }) {
                    out.append((a as NSString).appendingPathComponent(n))
                }
            } else {
                out.append(a)
            }
        }
        guard !out.isEmpty else { throw ValidationFailure("no images found in \(args.joined(separator: ", "))") }
        return out
    }

    /// `outDir/<image stem><suffix>`.
    static func output(_ image: String, _ outDir: String, _ suffix: String) -> String {
        let stem = ((image as NSString).lastPathComponent as NSString).deletingPathExtension
        return (outDir as NSString).appendingPathComponent(stem + suffix)
    }

    /// Checks that the output folder exists (creating it when absent) and that no output exists unless `force`.
    static func prepare(outDir: String, outputs: [String], force: Bool) throws {
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: outDir, isDirectory: &isDir) {
            do { try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true) } catch {
                throw ImageError.unwritableOutput(path: outDir, reason: "cannot create the output folder")
            }
        } else if !isDir.boolValue {
            throw ImageError.unwritableOutput(path: outDir, reason: "not a folder")
        }
        if !force, let e = outputs.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            throw ValidationFailure("cannot write \(e): the file exists (pass --force to overwrite)")
        }
    }

    /// Writes every `(path, bytes)` atomically (after all were encoded), removing the ones written if a later one fails.
    static func writeAll(_ files: [(String, Data)], force: Bool) throws {
        var done: [String] = []
        do {
            for (p, d) in files { try PNGEncoder.write(d, to: p, overwrite: force); done.append(p) }
        } catch {
            if !force { for p in done { try? FileManager.default.removeItem(atPath: p) } }
            throw error
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

    static let exitCodes = "Exit codes: 0 every image done; 1 a failure (bad model, unreadable image, output exists or unwritable: one line per problem on stderr, no partial file); 64 usage error."
}

/// An error shown as one line.
struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// `densekit segment`: semantic segmentation of images with a full `polymax` model.
struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment", abstract: "Segment images: indexed label PNG (pixel value = class index), optional overlay.",
        discussion: """
        Outputs per image in the output folder: <name>.labels.png (palette PNG, pixel value = class index, \
        colours from the model) or, with --format npy, <name>.scores.npy (float32 [C, H, W] class scores); \
        with --overlay, <name>.overlay.png (palette blended over the photo). All at the original upright size. \
        The default model is the first *.safetensors file in Models/. \(PipelineCLI.exitCodes)
        """)

    @Argument(help: "Images (PNG, JPEG) or folders of images.") var inputs: [String]
    @Option(name: .shortAndLong, help: "Model file (.safetensors, architecture polymax).") var model: String?
    @Option(name: .shortAndLong, help: "Output folder (created when absent).") var output: String = "."
    @Flag(help: "Also write <name>.overlay.png.") var overlay = false
    @Option(help: "Overlay opacity of the class colours, 0...1.") var alpha: Double = 0.5
    @Option(help: "png (indexed label map) or npy (float32 class scores).") var format: String = "png"
    @Flag(help: "Print one JSON object per image (one per line).") var json = false
    @Flag(help: "Overwrite existing outputs.") var force = false

    func validate() throws {
        guard ["png", "npy"].contains(format) else { throw ValidationError("--format must be png or npy") }
        guard (0...1).contains(alpha) else { throw ValidationError("--alpha must be in 0...1") }
    }

    func run() throws {
        try runReportingErrors {
            let images = try PipelineCLI.images(inputs)
            let seg = try Segmenter(modelPath: try PipelineCLI.modelPath(model))
            let failed = PipelineCLI.forEach(images) { path in
                let main = PipelineCLI.output(path, output, format == "png" ? ".labels.png" : ".scores.npy")
                let over = PipelineCLI.output(path, output, ".overlay.png")
                let outs = overlay ? [main, over] : [main]
                try PipelineCLI.prepare(outDir: output, outputs: outs, force: force)
                let (image, _) = try ImageDecoder.decode(path: path)
                let r = try seg.segment(image, includeScores: format == "npy")
                var files: [(String, Data)] = []
                if format == "png" {
                    files.append((main, try PipelineOutputs.labelPNG(r)))
                } else {
                    guard let s = r.scores else { throw ValidationFailure("no class scores computed") }
                    files.append((main, try PipelineOutputs.npyFloat32(s.scalars, shape: s.shape)))
                }
                if overlay { files.append((over, try PipelineOutputs.overlayPNG(r, over: image, alpha: alpha))) }
                try PipelineCLI.writeAll(files, force: force)
                let shares = r.classShares.enumerated().filter { $0.element > 0 }.sorted { $0.element > $1.element }
                if json {
                    let cls = shares.map { "{\"class\": \($0.offset), \"name\": \(PipelineCLI.quote(r.classNames[$0.offset])), \"share\": \(PipelineCLI.num($0.element))}" }
                    let outsJ = files.map { PipelineCLI.quote($0.0) }.joined(separator: ", ")
                    print("{\"image\": \(PipelineCLI.quote(path)), \"width\": \(r.width), \"height\": \(r.height), \"outputs\": [\(outsJ)], \"classes\": [\(cls.joined(separator: ", "))]}")
                } else {
                    print("\(path): \(r.width)x\(r.height) -> \(files.map { $0.0 }.joined(separator: ", "))")
                    for s in shares {
                        print("  " + r.classNames[s.offset].padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: " %6.2f %%", s.element * 100))
                    }
                }
            }
            try PipelineCLI.finish(failed: failed, of: images.count)
        }
    }
}
