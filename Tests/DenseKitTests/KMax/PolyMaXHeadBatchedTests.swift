import XCTest
@testable import DenseKit

/// `PolyMaXHead.batched`: the per-image results laid out in order, copied once; never a write past the tensor.
final class PolyMaXHeadBatchedTests: XCTestCase {
    func testImagesInOrder() {
        let t = PolyMaXHead.batched([2, 3], [[1, 2, 3], [4, 5, 6]])
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t.scalars, [1, 2, 3, 4, 5, 6])
        let one = PolyMaXHead.batched([1, 2, 2], [[7, 8, 9, 10]])
        XCTAssertEqual(one.scalars, [7, 8, 9, 10])
    }

    func testShortPartsLeaveZerosAndLongPartsAreCut() {
        XCTAssertEqual(PolyMaXHead.batched([2, 2], [[1, 2], [3]]).scalars, [1, 2, 3, 0])
        XCTAssertEqual(PolyMaXHead.batched([1, 3], [[1, 2], [3, 4, 5]]).scalars, [1, 2, 3])
        XCTAssertEqual(PolyMaXHead.batched([0, 4], [[]]).scalars, [])
        XCTAssertEqual(PolyMaXHead.batched([2], []).scalars, [0, 0])
    }
}
