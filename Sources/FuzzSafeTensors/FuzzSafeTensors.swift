import FuzzSupport

/// libFuzzer entry point of the FuzzSafeTensors target (see FuzzTargets.safeTensors and tools/fuzz.sh).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.safeTensors(data, size)
}

@main
struct FuzzSafeTensorsMain {
    static func main() { FuzzDriver.main(fuzzTestOneInput) }
}
