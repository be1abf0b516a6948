/// The architecture of a multi-task NFwFM (`../shared/MODEL.md`), normalized: every default
/// is explicit. It is what the config JSON says and what the manifest stores.
public struct Architecture: Sendable, Hashable {
    public var embeddingDim: Int
    /// Group names, in order. When `groupsListed` is false, one group per field, named after it.
    public var groups: [String]
    /// Whether the config listed `groups` (kept so the config round-trips as written).
    public var groupsListed: Bool
    public var fields: [Field]
    public var interaction: Interaction
    public var linear: Bool
    public var bottomInput: BottomInput
    public var layerOrder: LayerOrder
    public var bnEps: Double
    public var shared: [DenseLayer]
    public var tasks: [Task]
    public var fusion: Fusion
    /// Training description; nil when the config had no such section.
    public var loss: LossWeighting?
    public var reweight: Reweight?
    public var optimizer: Optimizer?

    public struct Field: Sendable, Hashable {
        public var name: String
        public var vocabSize: Int
        public var mapping: Mapping
        public var combiner: Combiner
        /// Index into `groups`.
        public var group: Int
    }

    public struct Interaction: Sendable, Hashable {
        public var intra = false
        public var halfFactor = false
        public var fieldBias = false
        public var diceScale = 1.0
    }

    public struct DenseLayer: Sendable, Hashable {
        public var units: Int
        public var activation: Activation = .relu
        public var batchNorm = false
    }

    public struct Task: Sendable, Hashable {
        public var name: String
        public var tower: [DenseLayer]
        public var useLinear = false
        public var logitOffset = 0.0
    }

    /// Lists hold one value per task (defaults filled in).
    public struct Fusion: Sendable, Hashable {
        public var type: FusionType
        public var bucket = 0.0
        public var weights: [Double] = []
        public var biases: [Double] = []
        public var exponents: [Double] = []
    }

    public struct LossWeighting: Sendable, Hashable {
        public var weighting: String
        public var parameterization: String = ""
        public var convention: String = ""
        public var frozen = false
        public var values: [Double] = []
        public var weights: [Double] = []
    }

    public struct NamedValue: Sendable, Hashable {
        public var name: String
        public var value: Double
    }

    public struct Reweight: Sendable, Hashable {
        public var scheme: String
        public var parameters: [NamedValue]
    }

    public struct Optimizer: Sendable, Hashable {
        public var type: OptimizerType
        public var parameters: [NamedValue]

        public func parameter(_ name: String) -> Double? { parameters.first { $0.name == name }?.value }
    }

    public enum Mapping: UInt32, Sendable, Hashable, CaseIterable {
        case direct = 1, modulo = 2, keyed = 3
    }

    public enum Combiner: UInt32, Sendable, Hashable, CaseIterable {
        case sum = 1, mean = 2, sqrtn = 3
    }

    public enum Activation: UInt32, Sendable, Hashable, CaseIterable {
        case relu = 1, identity = 2, sigmoid = 3, tanh = 4
    }

    public enum BottomInput: UInt32, Sendable, Hashable, CaseIterable {
        case interaction = 1, interactionGroups = 2, interactionFields = 3
    }

    public enum LayerOrder: UInt32, Sendable, Hashable, CaseIterable {
        case linearBnAct = 1, linearActBn = 2
    }

    public enum FusionType: UInt32, Sendable, Hashable, CaseIterable {
        case weightedSum = 1, lexicographic = 2, weightedProduct = 3
    }

    public enum OptimizerType: UInt32, Sendable, Hashable, CaseIterable {
        case adagrad = 1, adam = 2, ftrl = 3, sgd = 4

        /// Slot names of MODEL.md, one tensor `optimizer.{param}.{slot}` per trainable parameter.
        public var slots: [String] {
            switch self {
            case .adagrad: ["sum"]
            case .adam: ["exp_avg", "exp_avg_sq"]
            case .ftrl: ["z", "n"]
            case .sgd: []
            }
        }

        /// Hyperparameters a config may give for this optimizer.
        var parameterNames: [String] {
            switch self {
            case .adagrad: ["lr", "initial_accumulator", "eps", "weight_decay", "lr_decay"]
            case .adam: ["lr", "beta1", "beta2", "eps", "weight_decay"]
            case .ftrl: ["lr", "alpha", "beta", "l1", "l2", "lr_power", "initial_accumulator"]
            case .sgd: ["lr", "momentum", "weight_decay"]
            }
        }
    }

    /// Number of groups M.
    public var groupCount: Int { groups.count }
    /// Number of group pairs P = M(M-1)/2.
    public var pairCount: Int { groups.count * (groups.count - 1) / 2 }

    /// Width of the bottom input z.
    public var bottomInputWidth: Int {
        switch bottomInput {
        case .interaction: embeddingDim
        case .interactionGroups: embeddingDim * (1 + groups.count)
        case .interactionFields: embeddingDim * (1 + fields.count)
        }
    }
}

/// Names used in the config JSON for each enum (and in human output).
protocol ConfigNamed: CaseIterable, Hashable {
    var configName: String { get }
}

extension ConfigNamed {
    init?(configName: String) {
        guard let match = Self.allCases.first(where: { $0.configName == configName }) else { return nil }
        self = match
    }

    static var configNames: [String] { allCases.map(\.configName) }
}

extension Architecture.Mapping: ConfigNamed {
    public var configName: String {
        switch self { case .direct: "direct"; case .modulo: "modulo"; case .keyed: "keyed" }
    }
}

extension Architecture.Combiner: ConfigNamed {
    public var configName: String {
        switch self { case .sum: "sum"; case .mean: "mean"; case .sqrtn: "sqrtn" }
    }
}

extension Architecture.Activation: ConfigNamed {
    public var configName: String {
        switch self { case .relu: "relu"; case .identity: "identity"; case .sigmoid: "sigmoid"; case .tanh: "tanh" }
    }
}

extension Architecture.BottomInput: ConfigNamed {
    public var configName: String {
        switch self {
        case .interaction: "interaction"
        case .interactionGroups: "interaction+groups"
        case .interactionFields: "interaction+fields"
        }
    }
}

extension Architecture.LayerOrder: ConfigNamed {
    public var configName: String {
        switch self { case .linearBnAct: "linear_bn_act"; case .linearActBn: "linear_act_bn" }
    }
}

extension Architecture.FusionType: ConfigNamed {
    public var configName: String {
        switch self {
        case .weightedSum: "weighted_sum"
        case .lexicographic: "lexicographic"
        case .weightedProduct: "weighted_product"
        }
    }
}

extension Architecture.OptimizerType: ConfigNamed {
    /// The optimizer of a config name (`adagrad`, `adam`, `ftrl`, `sgd`).
    public init?(named name: String) { self.init(configName: name) }

    public var configName: String {
        switch self { case .adagrad: "adagrad"; case .adam: "adam"; case .ftrl: "ftrl"; case .sgd: "sgd" }
    }
}
