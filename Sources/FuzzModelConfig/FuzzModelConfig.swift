import FuzzSupport

/// libFuzzer entry point of the FuzzModelConfig target (see FuzzTargets.modelConfig and tools/fuzz.sh).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.modelConfig(data, size)
}

@main
struct FuzzModelConfigMain {
    static func main() { FuzzDriver.main(fuzzTestOneInput) }
}
