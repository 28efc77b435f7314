import Foundation

/// Atomic whole-file writes, for any bytes (PNG, `.npy`, `.pfm`, JSON, ...).
///
/// ```swift
/// try AtomicFile.write(try PipelineOutputs.npyFloat32(depth.values, shape: [depth.height, depth.width]),
///                      to: "out/photo.depth.npy", overwrite: false)
/// ```
/// The bytes go to a temporary file (`.<name>.tmp-XXXXXX`, created exclusively) in the target's folder, are
/// synced to disk, and only then put in place: renamed over the target (`overwrite: true`) or hard-linked to
/// it (`overwrite: false`, which fails atomically if the target appeared meanwhile). Readers see either no file,
/// the old file or the complete new one; a failure removes the temporary file and leaves no partial output.
/// The target's folder must exist (this function never creates folders).
public enum AtomicFile {
    /// Writes `data` to `path` atomically (see the type's description).
    /// - Parameters:
    ///   - overwrite: when `false`, an existing target is never replaced (checked before writing, and again
    ///     atomically when the file is put in place).
    /// - Throws: ``ImageError/outputExists(path:)`` when the target exists and `overwrite` is false;
    ///   ``ImageError/unwritableOutput(path:reason:)`` when the folder is missing or not writable, the target is
    ///   a folder, or writing fails (disk full, I/O error).
    public static func write(_ data: Data, to path: String, overwrite: Bool) throws {
        try AtomicFileWriter.write(data, to: path, overwrite: overwrite)
    }
}
