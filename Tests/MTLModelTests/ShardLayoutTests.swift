import Foundation
import Testing
@testable import MTLModel

/// docs/SHARDING.md's arithmetic against the vectors Python integers computed
/// (fixtures/sharding/make_vectors.py), and its covering properties.
@Suite("Shard layout arithmetic")
struct ShardLayoutTests {
    let vectors: [String: Any] = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("sharding/vectors.json")))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    @Test("Hashes and buckets are the documented ones")
    func hashVectors() throws {
        let cases = try #require(vectors["hashes"] as? [[String: String]])
        #expect(cases.count == 44)
        for c in cases {
            let id = UInt64(c["id"]!)!, seed = UInt64(c["seed"]!)!
            #expect(ShardLayout.hash(id, seed: seed) == UInt64(c["hash"]!)!, "\(c)")
            #expect(ShardLayout.bucket(id, seed: seed, bucketBits: 16) == UInt64(c["bucket16"]!)!)
            #expect(ShardLayout.bucket(id, seed: seed, bucketBits: 1) == UInt64(c["bucket1"]!)!)
            #expect(ShardLayout.bucket(id, seed: seed, bucketBits: 0) == 0)
        }
    }

    @Test("Parts are the documented ranges, cover everything once, and owner inverts them")
    func partVectors() throws {
        let cases = try #require(vectors["parts"] as? [[String: Any]])
        for c in cases {
            let total = UInt64(c["total"] as! String)!, count = c["count"] as! Int
            let starts = (c["starts"] as! [String]).map { UInt64($0)! }
            for k in 0..<count {
                #expect(ShardLayout.part(k, of: count, total: total) == starts[k]..<starts[k + 1], "\(c)")
            }
            #expect(starts.first == 0 && starts.last == total)
            let probes: [UInt64] = total == 0 ? [] : [0, total / 3, total / 2, total - 1] + starts.dropLast().filter { $0 < total }
            for element in probes {
                let owner = ShardLayout.owner(of: element, count: count, total: total)
                #expect(ShardLayout.part(owner, of: count, total: total).contains(element), "\(element) in \(c)")
            }
        }
        for total in [UInt64(1), 5, 64, 1000] {
            for count in 1...9 {
                var seen: UInt64 = 0
                for k in 0..<count {
                    let range = ShardLayout.part(k, of: count, total: total)
                    #expect(range.lowerBound == seen)
                    seen = range.upperBound
                    for element in range { #expect(ShardLayout.owner(of: element, count: count, total: total) == k) }
                }
                #expect(seen == total)
            }
        }
    }

    @Test("Buckets spread ids evenly, and resharding moves whole buckets")
    func spread() {
        let bits = 4, shards = 3
        var perBucket = [Int](repeating: 0, count: 1 << bits)
        for id in 0..<UInt64(160_000) { perBucket[Int(ShardLayout.bucket(id, seed: 7, bucketBits: bits))] += 1 }
        #expect(perBucket.allSatisfy { abs($0 - 10_000) < 400 }, "\(perBucket)")
        // An id's bucket does not depend on the shard count: only bucket ranges move.
        let bucket = ShardLayout.bucket(1_804_894_958_558_239_909, seed: 7, bucketBits: bits)
        let owners = (1...7).map { ShardLayout.owner(of: bucket, count: $0, total: 1 << UInt64(bits)) }
        #expect(owners.first == 0 && owners.count == 7 && ShardLayout.owner(of: bucket, count: shards, total: 16) < shards)
    }
}
