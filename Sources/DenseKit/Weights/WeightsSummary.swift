import Foundation

/// A description of a safetensors file for people and tools (`densekit info`):
/// tensor count, parameter count, dtypes, sizes and metadata.
public struct WeightsSummary: Sendable {
    /// Tensors and elements of one dtype.
    public struct DTypeCount: Sendable, Equatable {
        /// The dtype.
        public let dtype: SafeTensorsDType
        /// Number of tensors of this dtype.
        public let tensors: Int
        /// Total elements in those tensors.
        public let elements: Int
    }

    /// The file's path (or name).
    public let path: String
    /// Size of the whole file, in bytes.
    public let fileBytes: Int
    /// Size of the JSON header, in bytes.
    public let headerBytes: Int
    /// Number of tensors.
    public let tensorCount: Int
    /// Total elements over all tensors (0-d tensors count 1).
    public let parameterCount: Int
    /// Per-dtype counts, most elements first.
    public let dtypes: [DTypeCount]
    /// The file's `__metadata__`.
    public let metadata: [String: String]

    /// Summarises an opened file (reads only the validated header).
    public init(file: SafeTensorsFile) {
        path = file.path
        fileBytes = file.fileByteCount
        headerBytes = file.headerByteCount
        tensorCount = file.tensorNames.count
        var perType: [SafeTensorsDType: (Int, Int)] = [:]
        var total = 0
        for name in file.tensorNames {
            guard let info = file.info(name) else { continue }
            let n = info.elementCount
            total = total.addingReportingOverflow(n).overflow ? Int.max : total + n
            let old = perType[info.dtype] ?? (0, 0)
            perType[info.dtype] = (old.0 + 1, old.1 + n)
        }
        parameterCount = total
        dtypes = perType.map { DTypeCount(dtype: $0.key, tensors: $0.value.0, elements: $0.value.1) }
            .sorted { $0.elements != $1.elements ? $0.elements > $1.elements : $0.dtype.rawValue < $1.dtype.rawValue }
        metadata = file.metadata
    }

    /// Several lines of plain text.
    public var text: String {
        var lines = [
            "file: \(WeightsError.clean(path, limit: 1000))",
            "size: \(fileBytes) bytes (header \(headerBytes) bytes)",
            "tensors: \(tensorCount)",
            "parameters: \(parameterCount)",
        ]
        for d in dtypes {
            lines.append("dtype \(d.dtype.rawValue): \(d.tensors) tensors, \(d.elements) elements")
        }
        for key in metadata.keys.sorted() {
            lines.append("metadata \(WeightsError.clean(key)): \(WeightsError.clean(metadata[key] ?? "", limit: 500))")
        }
        return lines.joined(separator: "\n")
    }

    /// One JSON object (keys sorted) with the same content as `text`.
    public var jsonText: String {
        var fields: [String] = []
        fields.append("\"dtypes\":{" + dtypes.sorted { $0.dtype.rawValue < $1.dtype.rawValue }
            .map { "\"\($0.dtype.rawValue)\":{\"elements\":\($0.elements),\"tensors\":\($0.tensors)}" }
            .joined(separator: ",") + "}")
        fields.append("\"file\":\(SafeTensorsWriter.jsonString(path))")
        fields.append("\"file_bytes\":\(fileBytes)")
        fields.append("\"header_bytes\":\(headerBytes)")
        fields.append("\"metadata\":{" + metadata.keys.sorted()
            .map { "\(SafeTensorsWriter.jsonString($0)):\(SafeTensorsWriter.jsonString(metadata[$0] ?? ""))" }
            .joined(separator: ",") + "}")
        fields.append("\"parameters\":\(parameterCount)")
        fields.append("\"tensors\":\(tensorCount)")
        return "{" + fields.joined(separator: ",") + "}"
    }
}
