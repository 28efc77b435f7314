import Foundation

/// An immutable, validated layer graph: inputs, nodes in execution order, named outputs.
///
/// Build one with `GraphBuilder` (Swift code) or a family builder such as
/// `VoVNetBuilder` (from a model config). A graph holds prepared layers only; it is
/// `Sendable` and may be shared by any number of threads. Each input shape gets its
/// own `ExecutionPlan` (shape inference, memory plan), compiled on first use and cached.
/// Every call to `run` gets its own activation arena, so concurrent calls are safe; the arena of the
/// last run is kept (one per graph) and reused by the next run of the same plan.
public final class Graph: Sendable {
    /// Graph input value names, in declaration order.
    public let inputNames: [String]
    /// Nodes in execution (topological) order.
    public let nodes: [GraphNode]
    /// Output names, in declaration order.
    public let outputNames: [String]
    /// The value each output returns, parallel to `outputNames`.
    public let outputValues: [String]
    private let cache = PlanCache()
    private let idle = IdleContext()

    /// Validates and orders a graph.
    /// - Parameters:
    ///   - inputs: graph input value names.
    ///   - nodes: the nodes, in any order.
    ///   - outputs: `(output name, value name)` pairs.
    /// - Throws: `GraphError` for duplicate node names, values produced twice, values read
    ///   but never produced, cycles, unknown or duplicate outputs, or no outputs.
    public init(inputs: [String], nodes: [GraphNode], outputs: [(name: String, value: String)]) throws {
        var seen = Set<String>()
        for n in nodes where !seen.insert(n.name).inserted { throw GraphError.duplicateNode(n.name) }
        let order = try TopologicalOrder.sort(inputs: inputs, nodes: nodes)
        guard !outputs.isEmpty else { throw GraphError.invalidOutputs("the graph has no outputs") }
        var known = Set(inputs)
        for n in nodes { known.formUnion(n.outputs) }
        var names = Set<String>()
        for o in outputs {
            guard known.contains(o.value) else { throw GraphError.unknownOutput(output: o.name, value: o.value) }
            guard names.insert(o.name).inserted else { throw GraphError.invalidOutputs("two outputs are named \"\(o.name)\"") }
        }
        self.inputNames = inputs
        self.nodes = order.map { nodes[$0] }
        self.outputNames = outputs.map { $0.name }
        self.outputValues = outputs.map { $0.value }
    }

    /// A graph from parts that were validated before (an `ExecutionPlan` rebuilding the graph it was made from).
    init(validatedInputs inputs: [String], nodes: [GraphNode], outputNames: [String], outputValues: [String]) {
        self.inputNames = inputs
        self.nodes = nodes
        self.outputNames = outputNames
        self.outputValues = outputValues
    }

    /// The execution plan for these input shapes (compiled once per distinct shape set, then cached).
    /// - Parameter inputShapes: shape of every graph input, batch first.
    /// - Throws: `GraphError` (missing input, a layer rejecting its shapes, sizes too large).
    public func plan(inputShapes: [String: [Int]]) throws -> ExecutionPlan {
        if let p = cache.get(inputShapes) { return p }
        // Cached plans refer to this graph weakly: the cache must not keep its own graph alive.
        let p = try ExecutionPlan(graph: self, inputShapes: inputShapes, retainingGraph: false)
        cache.put(inputShapes, p)
        return p
    }

    /// Runs the graph on named inputs with a fresh arena.
    /// - Returns: `output name -> tensor` (fresh tensors, NCHW for rank-4 values).
    /// - Throws: `GraphError` from planning or an input mismatch.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        let p = try plan(inputShapes: inputs.mapValues { $0.shape })
        // Reuse the arena of the previous run when it was for the same plan and is idle: no fresh
        // allocation (and no first-touch page faults) per call for repeated same-size inputs. At most
        // one idle arena is kept per graph; concurrent calls each get their own.
        let ctx = idle.take(for: p) ?? p.makeContext()
        defer { idle.put(ctx) }
        return try p.run(inputs, context: ctx)
    }

    /// Runs a single-input graph.
    /// - Throws: `GraphError.inputMismatch` if the graph has not exactly one input; see `run(_:)`.
    public func run(_ input: Tensor) throws -> [String: Tensor] {
        try run([try soleInputName(): input])
    }

    /// Per-node timing after `warmup` untimed runs; see `ExecutionPlan.profile(_:warmup:)`.
    /// - Throws: as `run(_:)`.
    public func profile(inputs: [String: Tensor], warmup: Int = 1) throws -> ProfileReport {
        let p = try plan(inputShapes: inputs.mapValues { $0.shape })
        return try p.profile(inputs, warmup: warmup)
    }

    /// Profiles a single-input graph; see `ExecutionPlan.profile(_:warmup:)`.
    /// - Throws: as `run(_:)`.
    public func profile(input: Tensor, warmup: Int = 1) throws -> ProfileReport {
        try profile(inputs: [try soleInputName(): input], warmup: warmup)
    }

    func soleInputName() throws -> String {
        guard inputNames.count == 1 else {
            throw GraphError.inputMismatch(input: inputNames.joined(separator: ","), message: "the graph has \(inputNames.count) inputs; pass them by name")
        }
        return inputNames[0]
    }
}

/// A small lock-protected cache of plans keyed by input shapes (at most `limit` entries).
/// At most one idle `ExecutionContext` (arena) kept between runs of a graph; lock-protected.
final class IdleContext: @unchecked Sendable {
    private let lock = NSLock()
    private var context: ExecutionContext?

    /// The idle context if it belongs to `plan` (removed from the slot), else nil.
    func take(for plan: ExecutionPlan) -> ExecutionContext? {
        lock.lock(); defer { lock.unlock() }
        guard let c = context, c.plan === plan else { return nil }
        context = nil
        return c
    }

    /// Keeps `c` for the next run (replacing, and so freeing, any other idle context).
    func put(_ c: ExecutionContext) {
        lock.lock(); defer { lock.unlock() }
        context = c
    }
}

final class PlanCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(key: [String: [Int]], plan: ExecutionPlan)] = []
    private let limit = 8

    func get(_ key: [String: [Int]]) -> ExecutionPlan? {
        lock.lock(); defer { lock.unlock() }
        return entries.first(where: { $0.key == key })?.plan
    }

    func put(_ key: [String: [Int]], _ plan: ExecutionPlan) {
        lock.lock(); defer { lock.unlock() }
        if entries.contains(where: { $0.key == key }) { return }
        if entries.count >= limit { entries.removeFirst() }
        entries.append((key, plan))
    }
}
