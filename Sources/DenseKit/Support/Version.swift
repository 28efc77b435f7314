/// DenseKit's version.
public enum DenseKitVersion {
    /// Semantic version of the library and the CLI.
    public static let version = "0.1.0"
    /// `densekit <version>`.
    public static let string = "densekit \(version)"
}
