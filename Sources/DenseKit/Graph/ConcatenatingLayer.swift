import Foundation

/// A layer that only concatenates its inputs along one axis.
///
/// The execution plan may let the producers of its inputs write straight into the
/// matching slices of its output (no copy): with `concatAxis == 1` and NCHW values,
/// the channel slice of one sample is contiguous. The layer's `forward` must then skip
/// an input whose buffer already is its slice of the output.
public protocol ConcatenatingLayer: GraphLayer {
    /// The axis concatenated along (1 = channels of an NCHW value).
    var concatAxis: Int { get }
}
