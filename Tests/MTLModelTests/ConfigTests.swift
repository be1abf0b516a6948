import Foundation
import Testing
@testable import MTLModel

@Suite("Architecture config JSON")
struct ConfigTests {
    @Test("MODEL.md's example parses with every key as written")
    func modelMDExample() throws {
        let arch = try architecture(fromConfig: "model-md-example.json")
        #expect(arch.embeddingDim == 16)
        #expect(arch.groups == ["user", "item", "context"])
        #expect(arch.fields.map(\.mapping) == [.modulo, .keyed, .direct, .direct])
        #expect(arch.fields.map(\.group) == [0, 1, 1, 2])
        #expect(arch.interaction.intra && !arch.interaction.halfFactor)
        #expect(arch.bottomInput == .interactionGroups)
        #expect(arch.bottomInputWidth == 16 * 4)
        #expect(arch.shared.map(\.units) == [128, 64, 64, 32])
        #expect(arch.tasks.map(\.name) == ["ctr", "follow"])
        #expect(arch.fusion.type == .lexicographic && arch.fusion.bucket == 0.01)
        #expect(arch.loss?.values == [0, 0])
        #expect(arch.reweight?.parameters == [.init(name: "alpha", value: 5)])
        #expect(arch.optimizer?.parameter("initial_accumulator") == 0.001)
    }

    @Test("Missing keys take MODEL.md's defaults")
    func defaults() throws {
        let arch = try architecture(json: #"{"embedding_dim": 8, "fields": [{"name": "a", "vocab_size": 10}, {"name": "b", "vocab_size": 5}], "tasks": [{"name": "ctr"}], "shared": [{"units": 4}]}"#)
        #expect(arch.fields[0].mapping == .modulo && arch.fields[0].combiner == .sum)
        #expect(arch.groups == ["a", "b"] && !arch.groupsListed)
        #expect(arch.interaction == Architecture.Interaction())
        #expect(arch.interaction.diceScale == 1)
        #expect(!arch.linear)
        #expect(arch.bottomInput == .interaction && arch.layerOrder == .linearBnAct && arch.bnEps == 1e-5)
        #expect(arch.shared == [.init(units: 4, activation: .relu, batchNorm: false)])
        #expect(arch.tasks == [.init(name: "ctr", tower: [], useLinear: false, logitOffset: 0)])
        #expect(arch.fusion == .init(type: .weightedSum, weights: [1]))
        #expect(arch.loss == nil && arch.reweight == nil && arch.optimizer == nil)
    }

    @Test("The emitted config parses back to the same architecture",
          arguments: ["model-md-example.json", "small.json", "one-field.json", "edge-cases.json"])
    func configRoundTrip(name: String) throws {
        let arch = try architecture(fromConfig: name)
        let again = try Architecture(config: arch.config)
        #expect(again == arch)
        let text = arch.config.serialized()
        #expect(try Architecture(configJSON: Data(text.utf8)) == arch)
    }

    static let invalidConfigs: [(json: String, key: String, message: String)] = [
        (#"{"fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}]}"#, "embedding_dim", "missing"),
        (#"{"embedding_dim": 0, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}]}"#, "embedding_dim", "whole number"),
        (#"{"embedding_dim": 2.5, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}]}"#, "embedding_dim", "whole number"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "colour": 1}"#, "colour", "unknown key"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1, "mapping": "hash"}], "tasks": [{"name": "t"}]}"#, "fields[0].mapping", "unknown value"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1, "combiner": "max"}], "tasks": [{"name": "t"}]}"#, "fields[0].combiner", "unknown value"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1, "vocab": 3}], "tasks": [{"name": "t"}]}"#, "fields[0].vocab", #"unknown key; did you mean "vocab_size"?"#),
        (#"{"embeding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}]}"#, "embedding_dim", #"missing (required); the config has "embeding_dim": a misspelling?"#),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "fusoin": {}}"#, "fusoin", #"unknown key; did you mean "fusion"?"#),
        (#"{"embedding_dim": 4, "fields": [{"name": "a"}], "tasks": [{"name": "t"}]}"#, "fields[0].vocab_size", "missing"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}, {"name": "a", "vocab_size": 2}], "tasks": [{"name": "t"}]}"#, "fields[1].name", "duplicate"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a.b", "vocab_size": 1}], "tasks": [{"name": "t"}]}"#, "fields[0].name", "invalid name"),
        (#"{"embedding_dim": 4, "groups": ["u"], "fields": [{"name": "a", "vocab_size": 1, "group": "i"}], "tasks": [{"name": "t"}]}"#, "fields[0].group", "not in the groups list"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1, "group": "user"}], "tasks": [{"name": "t"}]}"#, "fields[0].group", "no groups list"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "interaction": {"intra": 1}}"#, "interaction.intra", "true or false"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "bottom_input": "fields"}"#, "bottom_input", "unknown value"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "shared": [{"activation": "relu"}]}"#, "shared[0].units", "missing"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t", "tower": [{"units": 2, "activation": "gelu"}]}]}"#, "tasks[0].tower[0].activation", "unknown value"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": []}"#, "tasks", "at least one task"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t", "use_linear": true}]}"#, "tasks[0].use_linear", "no first-order term"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "fusion": {"type": "lexicographic", "bucket": 0.1}}"#, "fusion.type", "at least two tasks"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}, {"name": "u"}], "fusion": {"type": "lexicographic"}}"#, "fusion.bucket", "missing"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}, {"name": "u"}], "fusion": {"type": "weighted_sum", "weights": [1]}}"#, "fusion.weights", "expected 2 values"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "fusion": {"type": "weighted_product", "biases": [-0.5]}}"#, "fusion.biases[0]", "can be negative"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "fusion": {"type": "weighted_product", "weights": [-2], "biases": [1]}}"#, "fusion.biases[0]", "can be negative"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "loss": {"weighting": "magic"}}"#, "loss.weighting", "unknown value"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "loss": {"weighting": "fixed", "values": [1, 2]}}"#, "loss.values", "expected 1 values"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "optimizer": {"type": "adam", "initial_accumulator": 0.1}}"#, "optimizer.initial_accumulator", "unknown key"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "optimizer": {"lr": 0.1}}"#, "optimizer.type", "missing"),
        (#"{"embedding_dim": 4, "fields": [{"name": "a", "vocab_size": 1}], "tasks": [{"name": "t"}], "reweight": {"scheme": "x", "alpha": "high"}}"#, "reweight.alpha", "expected a number"),
        (#"{"embedding_dim": 4, "fields": "a", "tasks": [{"name": "t"}]}"#, "fields", "expected a list"),
        (#"[1, 2]"#, "(top level)", "expected an object"),
    ]

    @Test("An invalid config is an error naming the key", arguments: invalidConfigs)
    func invalidConfig(_ case_: (json: String, key: String, message: String)) {
        #expect {
            _ = try architecture(json: case_.json)
        } throws: { error in
            guard let error = error as? MTLModelError else { return false }
            return error.code == .invalidConfig && error.location.key == case_.key && error.message.contains(case_.message)
        }
    }

    @Test("Text that is not JSON is an invalid config naming line and column")
    func notJSON() {
        #expect(throws: MTLModelError.self) { _ = try architecture(json: "{embedding_dim: 4") }
        #expect {
            _ = try architecture(json: "{\n  \"embedding_dim\": 4,\n  \"fields\" [1]\n}")
        } throws: { error in
            guard let error = error as? MTLModelError else { return false }
            return error.code == .invalidConfig && error.location.line == 3 && error.message.hasPrefix("not valid JSON at column ")
        }
    }
}
