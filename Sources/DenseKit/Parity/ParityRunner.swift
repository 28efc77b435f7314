import Foundation

/// Errors of the parity runner.
public enum ParityError: Error, CustomStringConvertible, Sendable {
    /// The case file's metadata is missing or malformed.
    case badCase(String, String)
    /// A handler could not compute an output (unsupported attribute, missing tensor...).
    case unsupported(String)
    /// The folder does not exist or cannot be listed.
    case noSuchFolder(String)
    /// No case was found (or none matched the filter).
    case noCases(String)

    public var description: String {
        switch self {
        case .badCase(let p, let m): return "\(p): bad golden case: \(m)"
        case .unsupported(let m): return "unsupported: \(m)"
        case .noSuchFolder(let p): return "\(p): no such folder"
        case .noCases(let p): return "\(p): no golden case found (or none matched the filter)"
        }
    }
}

/// The verdict on one golden case.
public struct ParityResult: Sendable {
    public enum Status: String, Sendable { case pass = "PASS", fail = "FAIL", skip = "SKIP" }
    /// PASS, FAIL or SKIP.
    public let status: Status
    /// Case name relative to the folder (`ops/conv2d_k3_p1`).
    public let name: String
    /// Largest `|got - want|` over all float outputs.
    public let maxAbs: Double
    /// Largest `|got - want| / max(|want|, 1e-6)`.
    public let maxRel: Double
    /// Why it failed or was skipped, or extra information (empty when it passed).
    public let detail: String

    /// The runner's line: `PASS|FAIL|SKIP <case> max_abs=<..> max_rel=<..>` and a detail.
    public var line: String {
        var s = "\(status.rawValue) \(name) max_abs=\(String(format: "%.3g", maxAbs)) max_rel=\(String(format: "%.3g", maxRel))"
        if !detail.isEmpty { s += " (\(detail))" }
        return s
    }
}

/// Runs golden cases (`golden/README.md`) through DenseKit and compares the outputs.
public enum ParityRunner {
    /// All `*.safetensors` files below `folder` (or `folder` itself if it is a file), sorted.
    /// - Throws: `ParityError.noSuchFolder`.
    public static func findCases(in folder: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) else { throw ParityError.noSuchFolder(folder) }
        if !isDir.boolValue { return [folder] }
        guard let e = FileManager.default.enumerator(atPath: folder) else { throw ParityError.noSuchFolder(folder) }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            if rel.hasSuffix(".safetensors") { out.append((folder as NSString).appendingPathComponent(rel)) }
        }
        return out.sorted()
    }

    /// Runs one case file. Never throws: damaged files and handler errors become FAIL lines,
    /// targets DenseKit does not implement yet become SKIP lines.
    public static func run(casePath: String, displayName: String? = nil) -> ParityResult {
        let display = displayName ?? URL(fileURLWithPath: casePath).deletingPathExtension().lastPathComponent
        let gc: GoldenCase
        do { gc = try GoldenCase(path: casePath) } catch {
            return ParityResult(status: .fail, name: display, maxAbs: .nan, maxRel: .nan, detail: "\(error)")
        }
        guard let handler = ParityRegistry.handler(family: gc.family, target: gc.target) else {
            return ParityResult(status: .skip, name: display, maxAbs: 0, maxRel: 0, detail: "target \(gc.family)/\(gc.target) not implemented")
        }
        if gc.outputs.isEmpty {
            return ParityResult(status: .fail, name: display, maxAbs: .nan, maxRel: .nan, detail: "case declares no outputs")
        }
        let got: [String: ParityOutput]
        do { got = try handler(gc) } catch {
            return ParityResult(status: .fail, name: display, maxAbs: .nan, maxRel: .nan, detail: "\(error)")
        }
        var maxAbs = 0.0, maxRel = 0.0
        var problems: [String] = []
        for (outName, tol) in gc.outputs.sorted(by: { $0.key < $1.key }) {
            let key = "output." + outName
            guard let produced = got[outName] else { problems.append("\(outName): not produced"); continue }
            switch produced {
            case .index(let t):
                let want: IndexTensor
                do { want = try gc.file.indexTensor(key) } catch { problems.append("\(outName): \(error)"); continue }
                if t.shape != want.shape { problems.append("\(outName): shape \(t.shape) != \(want.shape)"); continue }
                let bad = zip(t.values, want.values).filter { $0 != $1 }.count
                if bad > 0 { problems.append("\(outName): \(bad) of \(want.values.count) differ") }
            case .float(let t):
                if gc.file.info(key)?.dtype == .i64 {
                    // A float result compared with integer labels: compare exactly after rounding.
                    guard let want = try? gc.file.indexTensor(key) else { problems.append("\(outName): unreadable"); continue }
                    if t.shape != want.shape { problems.append("\(outName): shape \(t.shape) != \(want.shape)"); continue }
                    let bad = zip(t.scalars, want.values).filter { Int64($0.rounded()) != $1 }.count
                    if bad > 0 { problems.append("\(outName): \(bad) of \(want.values.count) differ") }
                    continue
                }
                let want: Tensor
                do { want = try gc.file.floatTensor(key) } catch { problems.append("\(outName): \(error)"); continue }
                if t.shape != want.shape { problems.append("\(outName): shape \(t.shape) != \(want.shape)"); continue }
                var (atol, rtol) = (0.0, 0.0)
                if case .close(let a, let r) = tol { (atol, rtol) = (a, r) }
                var nBad = 0
                t.withUnsafeBufferPointer { g in
                    want.withUnsafeBufferPointer { w in
                        for i in 0..<w.count {
                            let wv = Double(w[i]), gv = Double(g[i])
                            let d = abs(gv - wv)
                            if d.isNaN { nBad += 1; maxAbs = .nan; continue }
                            maxAbs = max(maxAbs, d)
                            maxRel = max(maxRel, d / max(abs(wv), 1e-6))
                            if d > atol + rtol * abs(wv) { nBad += 1 }
                        }
                    }
                }
                if nBad > 0 { problems.append("\(outName): \(nBad) of \(want.count) outside atol=\(atol) rtol=\(rtol)") }
            }
        }
        return ParityResult(status: problems.isEmpty ? .pass : .fail, name: display, maxAbs: maxAbs, maxRel: maxRel,
                            detail: problems.joined(separator: "; "))
    }

    /// Runs every case under `folder`, calling `report` with each result as it completes.
    /// - Returns: all results, in case order.
    /// - Throws: `ParityError.noSuchFolder`.
    public static func run(folder: String, filter: String? = nil, report: (ParityResult) -> Void = { _ in }) throws -> [ParityResult] {
        let files = try findCases(in: folder)
        let base = URL(fileURLWithPath: folder).standardizedFileURL.path
        var results: [ParityResult] = []
        for f in files {
            var display = URL(fileURLWithPath: f).standardizedFileURL.path
            if display.hasPrefix(base + "/") { display = String(display.dropFirst(base.count + 1)) }
            if display.hasSuffix(".safetensors") { display = String(display.dropLast(12)) }
            if let filter, !display.contains(filter) { continue }
            let r = run(casePath: f, displayName: display)
            report(r)
            results.append(r)
        }
        return results
    }

    /// The closing line: `N passed, M failed, K skipped`.
    public static func summary(_ results: [ParityResult]) -> String {
        let p = results.filter { $0.status == .pass }.count
        let f = results.filter { $0.status == .fail }.count
        let s = results.filter { $0.status == .skip }.count
        return "\(p) passed, \(f) failed, \(s) skipped"
    }
}
