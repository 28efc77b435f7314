import FuzzSupport

/// libFuzzer entry point of the FuzzImage target (see FuzzTargets.image and tools/fuzz.sh).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.image(data, size)
}

@main
struct FuzzImageMain {
    static func main() { FuzzDriver.main(fuzzTestOneInput) }
}
