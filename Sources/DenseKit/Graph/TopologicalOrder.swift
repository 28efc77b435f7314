import Foundation

/// Orders nodes so that every value is produced before it is read (Kahn's algorithm).
///
/// Ties are broken by the order the nodes were added, so a graph added in execution
/// order keeps that order exactly.
enum TopologicalOrder {
    /// - Returns: node indices in execution order.
    /// - Throws: `GraphError.unknownValue`, `.duplicateValue`, `.cycle`.
    static func sort(inputs: [String], nodes: [GraphNode]) throws -> [Int] {
        var producer: [String: Int] = [:]    // value -> node index (-1: graph input)
        for i in inputs {
            if producer[i] != nil { throw GraphError.duplicateValue(value: i, node: "<graph input>") }
            producer[i] = -1
        }
        for (k, n) in nodes.enumerated() {
            for o in n.outputs {
                if producer[o] != nil { throw GraphError.duplicateValue(value: o, node: n.name) }
                producer[o] = k
            }
        }
        var indegree = [Int](repeating: 0, count: nodes.count)
        var consumers = [[Int]](repeating: [], count: nodes.count)
        for (k, n) in nodes.enumerated() {
            for v in n.inputs {
                guard let p = producer[v] else { throw GraphError.unknownValue(node: n.name, value: v) }
                if p >= 0 { indegree[k] += 1; consumers[p].append(k) }
            }
        }
        // A min-heap on the insertion index would be O(n log n); graphs are small, and a
        // sorted ready list keeps the code obvious.
        var ready = indegree.indices.filter { indegree[$0] == 0 }
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        while !ready.isEmpty {
            let k = ready.removeFirst()
            order.append(k)
            var added = false
            for c in consumers[k] {
                indegree[c] -= 1
                if indegree[c] == 0 { ready.append(c); added = true }
            }
            if added { ready.sort() }
        }
        if order.count != nodes.count {
            let stuck = indegree.indices.filter { indegree[$0] > 0 }.map { nodes[$0].name }
            throw GraphError.cycle(stuck)
        }
        return order
    }
}
