import DenseKit
import Foundation

// segment-example <photo> [model.safetensors] [out.png]: prints the class shares, writes an indexed label PNG.
let args = CommandLine.arguments
do {
    let photo = args.count > 1 ? args[1] : "Samples/chelsea.png"
    let modelPath = args.count > 2 ? args[2] : try ModelCapabilities.defaultModel(in: "Models", for: .segmentation)
    let segmenter = try Segmenter(modelPath: modelPath)
    let (image, _) = try ImageDecoder.decode(path: photo)          // upright RGB8 (EXIF orientation applied)
    let result = try segmenter.segment(image)                      // labels at the photo's size
    for (c, share) in result.classShares.enumerated() where share > 0 {
        print(result.classNames[c], String(format: "%.1f %%", share * 100))
    }
    let out = args.count > 3 ? args[3] : "labels.png"
    try AtomicFile.write(try PipelineOutputs.labelPNG(result), to: out, overwrite: true)   // pixel value = class index
    print("wrote \(out)")
} catch {
    FileHandle.standardError.write(Data("segment-example: \(error)\n".utf8))
    exit(1)
}
