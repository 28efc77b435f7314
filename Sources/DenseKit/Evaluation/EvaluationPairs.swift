import Foundation

/// One image and its ground-truth file (a label PNG or a depth PNG), matched by file stem.
public struct EvaluationPair: Sendable, Equatable {
    /// The common stem (file name without extension), e.g. `0016E5_07959`.
    public var name: String
    /// Path of the image (PNG or JPEG).
    public var image: String
    /// Path of the ground truth (PNG).
    public var target: String

    /// A pair as given.
    public init(name: String, image: String, target: String) {
        self.name = name
        self.image = image
        self.target = target
    }
}

/// Pairs the images of one folder with the ground-truth PNGs of another by file stem
/// (CamVid: `val/images/NAME.jpg` with `val/labels/NAME.png`; depth-eval: `rgb/ID.jpg` with `depth/ID.png`).
public enum EvaluationPairs {
    /// Extensions (lower case) taken as images.
    public static let imageExtensions = ["png", "jpg", "jpeg"]

    /// Matches `images` with `targets`, sorted by stem; not recursive; hidden files skipped.
    /// - Parameters:
    ///   - images: folder of PNG / JPEG images.
    ///   - targets: folder of ground-truth PNGs (`NAME.png`).
    ///   - names: when given (a `--list`), exactly these stems in this order, each of which must have both files.
    /// - Returns: the pairs, and the stems of images that have no ground truth (empty when `names` is given).
    /// - Throws: `EvaluationError.notAFolder` for a missing folder; `.invalidArgument` when two images share a stem;
    ///   `.missingListed` for a listed name without image or ground truth; `.noPairs` when nothing matches.
    public static func match(images: String, targets: String, names: [String]? = nil) throws
        -> (pairs: [EvaluationPair], unmatched: [String]) {
        let imageFiles = try files(in: images, extensions: imageExtensions)
        let targetFiles = try files(in: targets, extensions: ["png"])
        var pairs: [EvaluationPair] = []
        var unmatched: [String] = []
        if let names {
            for n in names {
                guard let i = imageFiles[n] else {
                    throw EvaluationError.missingListed(name: n, reason: "no image \(n).{png,jpg,jpeg} in \(images)")
                }
                guard let t = targetFiles[n] else {
                    throw EvaluationError.missingListed(name: n, reason: "no ground truth \(n).png in \(targets)")
                }
                pairs.append(EvaluationPair(name: n, image: i, target: t))
            }
        } else {
            for n in imageFiles.keys.sorted() {
                if let t = targetFiles[n] { pairs.append(EvaluationPair(name: n, image: imageFiles[n]!, target: t)) } else { unmatched.append(n) }
            }
        }
        guard !pairs.isEmpty else { throw EvaluationError.noPairs(images: images, targets: targets) }
        return (pairs, unmatched)
    }

    /// The stems of a list file: one per line, surrounding blanks trimmed, empty lines and `#` comments skipped;
    /// a folder or an extension on a line is dropped (`val/NAME.png` -> `NAME`).
    /// - Throws: `ImageError` when the file cannot be read; `EvaluationError.invalidArgument` for a list with no name
    ///   or one that is not UTF-8.
    /// The largest list file `readList` reads (16 MiB: several hundred thousand names).
    public static let maxListBytes = 16 << 20

    public static func readList(path: String) throws -> [String] {
        let data = try ImageFileReader.read(path)
        guard data.count <= maxListBytes else {
            throw EvaluationError.invalidArgument("\(path): the list is \(data.count) bytes, more than the \(maxListBytes) a list of image names may have")
        }
        guard !data.contains(0) else { throw EvaluationError.invalidArgument("\(path): the list is not text (it holds NUL bytes)") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw EvaluationError.invalidArgument("\(path): the list is not UTF-8 text")
        }
        var tooLong: String? = nil
        let names = text.split(whereSeparator: \.isNewline).compactMap { line -> String? in
            let s = line.trimmingCharacters(in: .whitespaces)
            guard !s.isEmpty, !s.hasPrefix("#") else { return nil }
            if s.utf8.count > 4096, tooLong == nil { tooLong = String(s.prefix(40)) }
            let last = (s as NSString).lastPathComponent
            let ext = (last as NSString).pathExtension.lowercased()
            return imageExtensions.contains(ext) ? (last as NSString).deletingPathExtension : last
        }
        if let t = tooLong { throw EvaluationError.invalidArgument("\(path): a line longer than 4096 bytes (starting \(t.debugDescription))") }
        guard !names.isEmpty else { throw EvaluationError.invalidArgument("\(path): the list names no image") }
        return names
    }

    /// Checks, from the file headers only, that every ground truth has its image's upright size.
    /// - Throws: `ImageError` for a file that is unreadable or not an image; `EvaluationError.sizeMismatch` naming
    ///   the first pair whose sizes differ.
    public static func checkSizes(_ pairs: [EvaluationPair]) throws {
        for p in pairs {
            let i = try ImageDecoder.probe(path: p.image)
            let t = try ImageDecoder.probe(path: p.target)
            guard i.width == t.width, i.height == t.height else {
                throw EvaluationError.sizeMismatch(what: p.target, expected: "\(i.width)x\(i.height)", got: "\(t.width)x\(t.height)")
            }
        }
    }

    /// `stem -> path` of the files in `dir` with one of `extensions`.
    static func files(in dir: String, extensions: [String]) throws -> [String: String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw EvaluationError.notAFolder(dir)
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir) } catch { throw EvaluationError.notAFolder(dir) }
        var out: [String: String] = [:]
        for n in names.sorted() where !n.hasPrefix(".") {
            let ext = (n as NSString).pathExtension.lowercased()
            guard extensions.contains(ext) else { continue }
            let stem = (n as NSString).deletingPathExtension
            if let other = out[stem] {
                throw EvaluationError.invalidArgument("\(dir): two files share the name \(stem) (\((other as NSString).lastPathComponent), \(n)); keep one")
            }
            out[stem] = (dir as NSString).appendingPathComponent(n)
        }
        return out
    }
}
