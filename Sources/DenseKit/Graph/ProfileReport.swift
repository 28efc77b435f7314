import Foundation

/// Per-node timing and work of one run, and the plan's memory figures
/// (`ExecutionPlan.profile(_:)`, `Graph.profile(input:)`).
public struct ProfileReport: Sendable, CustomStringConvertible {
    /// One node's figures.
    public struct Entry: Sendable {
        /// Node name.
        public let node: String
        /// Layer operation (`conv2d`, `max_pool2d`, ...).
        public let op: String
        /// Shape of the node's first output, batch first.
        public let outputShape: [Int]
        /// Wall-clock time of the node, in milliseconds.
        public let milliseconds: Double
        /// Floating-point operations (multiply-add = 2).
        public let flops: Double
        /// Achieved GFLOP/s (0 when the node does no counted work or took no measurable time).
        public var gflops: Double { milliseconds > 0 ? flops / (milliseconds * 1e6) : 0 }
    }

    /// Nodes in execution order.
    public let entries: [Entry]
    /// Wall-clock time of the whole run (including input and output copies), in milliseconds.
    public let totalMilliseconds: Double
    /// Arena and activation figures of the plan.
    public let memory: MemoryPlanSummary

    /// Total counted floating-point operations.
    public var totalFlops: Double { entries.reduce(0) { $0 + $1.flops } }

    /// Milliseconds and share of the time per op name, slowest first.
    public var byOp: [(op: String, milliseconds: Double, count: Int)] {
        var acc: [String: (Double, Int)] = [:]
        for e in entries { let a = acc[e.op] ?? (0, 0); acc[e.op] = (a.0 + e.milliseconds, a.1 + 1) }
        return acc.map { ($0.key, $0.value.0, $0.value.1) }.sorted { $0.milliseconds > $1.milliseconds }
    }

    /// A table: one row per node (name, op, output shape, ms, GFLOP/s), then totals per op,
    /// the total time and GFLOP/s, and the memory line.
    public var description: String {
        let nameWidth = min(48, max(4, entries.map { $0.node.count }.max() ?? 4))
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? String(s.prefix(w)) : s + String(repeating: " ", count: w - s.count) }
        func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        var lines = [pad("node", nameWidth) + "  " + pad("op", 14) + "  " + pad("output", 20) + "  " + lpad("ms", 9) + "  " + lpad("GFLOP/s", 8)]
        for e in entries {
            lines.append(pad(e.node, nameWidth) + "  " + pad(e.op, 14) + "  " + pad(ShapeText.of(e.outputShape), 20) + "  "
                         + lpad(String(format: "%.3f", e.milliseconds), 9) + "  " + lpad(e.flops > 0 ? String(format: "%.1f", e.gflops) : "-", 8))
        }
        lines.append("")
        for o in byOp {
            let pct = totalMilliseconds > 0 ? 100 * o.milliseconds / totalMilliseconds : 0
            lines.append(pad(o.op, 14) + "  x\(lpad(String(o.count), 4))  " + lpad(String(format: "%.3f ms", o.milliseconds), 12)
                         + "  " + lpad(String(format: "%.1f%%", pct), 6))
        }
        let gf = totalMilliseconds > 0 ? totalFlops / (totalMilliseconds * 1e6) : 0
        lines.append(String(format: "total %.3f ms, %.3f GFLOP, %.1f GFLOP/s", totalMilliseconds, totalFlops / 1e9, gf))
        lines.append("memory: \(memory)")
        return lines.joined(separator: "\n")
    }
}
