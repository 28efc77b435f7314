import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only bytes of a weights file: a private read-only memory map of a regular
/// file, or an aligned heap copy of a `Data`. Every access goes through
/// `withBytes(_:_:)`, which checks the range.
///
/// A mapped file that another process truncates while it is mapped can still fault
/// on access (SIGBUS); DenseKit does not write the files it maps.
final class WeightsByteRegion: @unchecked Sendable {
    private let base: UnsafeRawPointer?
    let count: Int
    private let mapped: Bool

    /// Maps the regular file at `path`. Empty files and non-regular files are refused.
    init(mappingFileAt path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw WeightsError.io(file: path, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw WeightsError.io(file: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw WeightsError.io(file: path, reason: "not a regular file")
        }
        guard let size = Int(exactly: st.st_size), size >= 0 else {
            throw WeightsError.io(file: path, reason: "file size \(st.st_size) out of range")
        }
        guard size > 0 else {
            throw WeightsError.malformed(file: path, reason: "empty file (0 bytes)")
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw WeightsError.io(file: path, reason: "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        self.base = UnsafeRawPointer(p)
        self.count = size
        self.mapped = true
    }

    /// An aligned (64-byte) copy of `data`.
    init(copying data: Data) {
        count = data.count
        mapped = false
        if data.isEmpty {
            base = nil
        } else {
            let p = UnsafeMutableRawPointer.allocate(byteCount: data.count, alignment: 64)
            data.withUnsafeBytes { src in
                if let s = src.baseAddress { p.copyMemory(from: s, byteCount: src.count) }
            }
            base = UnsafeRawPointer(p)
        }
    }

    /// Calls `body` with the bytes in `range`, or returns nil when the range is not
    /// inside the region.
    func withBytes<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard range.lowerBound >= 0, range.upperBound <= count else { return nil }
        guard let base else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    /// Copies the bytes in `range` into an array, or nil when out of bounds.
    func copyBytes(_ range: Range<Int>) -> [UInt8]? {
        withBytes(range) { Array($0) }
    }

    deinit {
        guard let base else { return }
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }
}
