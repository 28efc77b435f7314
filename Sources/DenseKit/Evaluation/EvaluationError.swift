import Foundation

/// Errors of the evaluation metrics and of pairing images with their ground truth.
///
/// Every description is one line and names the file or the sizes involved.
public enum EvaluationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A metric was given an impossible argument (a class count below 1, a negative or non-finite scale).
    case invalidArgument(String)
    /// Prediction and ground truth differ in size; `what` names the pair (a file, or "prediction").
    case sizeMismatch(what: String, expected: String, got: String)
    /// A folder named on the command line does not exist or is not a folder.
    case notAFolder(String)
    /// No image found a ground-truth file of the same stem.
    case noPairs(images: String, targets: String)
    /// A name of a `--list` file has no image or no ground-truth file.
    case missingListed(name: String, reason: String)

    /// One line.
    public var description: String {
        switch self {
        case .invalidArgument(let m): return m
        case .sizeMismatch(let what, let expected, let got):
            return "\(what): ground truth is \(got) but the image is \(expected); they must be the same size"
        case .notAFolder(let p): return "\(p): no such folder"
        case .noPairs(let i, let t):
            return "no image in \(i) has a ground-truth PNG of the same name (stem) in \(t)"
        case .missingListed(let n, let r): return "listed name \(n): \(r)"
        }
    }
}
