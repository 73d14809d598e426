import Autograd
import Foundation
import NN

/// Updates a model's parameters from their gradients.
public protocol Optimizer: AnyObject {
    /// The parameters, by `state_dict` name.
    var parameters: [(name: String, parameter: Parameter)] { get }
    /// The step size; schedules change it between steps.
    var learningRate: Double { get set }
    /// Number of steps taken.
    var stepCount: Int { get }
    /// Applies one update from the current gradients (parameters without a gradient are left alone).
    func step()
    /// The optimiser's state as named tensors (for checkpoints), e.g. "exp_avg.head.0.weight".
    func stateTensors() -> [String: Tensor<Float>]
    /// Restores state saved by `stateTensors` and `stepCount`; throws when names or shapes do not fit.
    func loadState(_ tensors: [String: Tensor<Float>], stepCount: Int) throws
}

extension Optimizer {
    /// Clears every parameter's gradient.
    public func zeroGradients() { parameters.forEach { $0.parameter.zeroGradient() } }
}

/// `parameters` named by their position, "0", "1", ..., as PyTorch's optimiser `state_dict` numbers them.
func numbered(_ parameters: [Parameter]) -> [(name: String, parameter: Parameter)] {
    parameters.enumerated().map { ("\($0.offset)", $0.element) }
}

/// Moment buffers per parameter, by name: the shared bookkeeping of the optimisers with state.
struct MomentBuffers {
    var buffers: [String: [Float]] = [:]

    mutating func buffer(_ key: String, count: Int) -> [Float] {
        if let b = buffers[key] { return b }
        return [Float](repeating: 0, count: count)
    }

    /// Takes the buffer out of the dictionary (zeros when absent), so that updating it does not copy it; put it
    /// back with `buffers[key] = ...`.
    mutating func takeBuffer(_ key: String, count: Int) -> [Float] {
        buffers.removeValue(forKey: key) ?? [Float](repeating: 0, count: count)
    }

    func tensors(_ parameters: [(name: String, parameter: Parameter)], kinds: [String]) -> [String: Tensor<Float>] {
        var result: [String: Tensor<Float>] = [:]
        for kind in kinds {
            for (name, p) in parameters {
                if let b = buffers["\(kind).\(name)"] { result["\(kind).\(name)"] = Tensor(shape: p.shape, scalars: b) }
            }
        }
        return result
    }

    static func load(_ tensors: [String: Tensor<Float>], parameters: [(name: String, parameter: Parameter)],
                     kinds: [String], optimizer: String) throws -> MomentBuffers {
        var result = MomentBuffers()
        var known = Set<String>()
        for kind in kinds {
            for (name, p) in parameters {
                let key = "\(kind).\(name)"
                known.insert(key)
                guard let t = tensors[key] else { continue }
                guard t.shape == p.shape else {
                    throw StateDictError(source: "\(optimizer) state", mismatched: [(key, p.shape, t.shape)])
                }
                result.buffers[key] = t.scalars
            }
        }
        let unexpected = tensors.keys.filter { !known.contains($0) }.sorted()
        if !unexpected.isEmpty { throw StateDictError(source: "\(optimizer) state", unexpected: unexpected) }
        return result
    }
}

// MARK: - AdamW

/// Adam with decoupled weight decay, exactly as `torch.optim.AdamW` (non-amsgrad):
/// p *= 1 - lr * wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
/// p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
public final class AdamW: Optimizer {
    /// The parameters updated, by `state_dict` name (the names key the moment buffers).
    public let parameters: [(name: String, parameter: Parameter)]
    /// The step size lr; schedules set it before each step.
    public var learningRate: Double
    /// The moment decay rates, the denominator's epsilon and the decoupled weight decay, as PyTorch names them.
    public let beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double
    /// Steps taken; the bias corrections use it.
    public private(set) var stepCount = 0
    private var moments = MomentBuffers()

    /// AdamW over named parameters, with PyTorch's defaults (lr 1e-3, betas 0.9 and 0.999, eps 1e-8, weight decay
    /// 1e-2).
    public init(parameters: [(name: String, parameter: Parameter)], learningRate: Double = 1e-3,
                beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 1e-2) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    /// AdamW over every parameter of `module`, by `state_dict` name: `AdamW(model, learningRate: 1e-3)`.
    public convenience init(_ module: Module, learningRate: Double = 1e-3, beta1: Double = 0.9,
                            beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 1e-2) {
        self.init(parameters: module.namedParameters, learningRate: learningRate, beta1: beta1, beta2: beta2,
                  epsilon: epsilon, weightDecay: weightDecay)
    }

    /// AdamW over `parameters` (`AdamW(model.parameters())`), named "0", "1", ... in the order given, as PyTorch's
    /// optimiser `state_dict` numbers them.
    public convenience init(_ parameters: [Parameter], learningRate: Double = 1e-3, beta1: Double = 0.9,
                            beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 1e-2) {
        self.init(parameters: numbered(parameters), learningRate: learningRate, beta1: beta1, beta2: beta2,
                  epsilon: epsilon, weightDecay: weightDecay)
    }

    /// PyTorch's spelling, `AdamW(model, lr: 1e-3)`: the same as `AdamW(model, learningRate: 1e-3)`.
    public convenience init(_ module: Module, lr: Double, beta1: Double = 0.9, beta2: Double = 0.999,
                            epsilon: Double = 1e-8, weightDecay: Double = 1e-2) {
        self.init(module, learningRate: lr, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay)
    }

    /// PyTorch's spelling, `AdamW(model.parameters(), lr: 1e-3)`: the same as the `learningRate:` form.
    public convenience init(_ parameters: [Parameter], lr: Double, beta1: Double = 0.9, beta2: Double = 0.999,
                            epsilon: Double = 1e-8, weightDecay: Double = 1e-2) {
        self.init(parameters, learningRate: lr, beta1: beta1, beta2: beta2, epsilon: epsilon,
                  weightDecay: weightDecay)
    }

    /// One AdamW update of every parameter that has a gradient.
    public func step() {
        stepCount += 1
        let t = Double(stepCount)
        let stepSize = Float(learningRate / (1 - Foundation.pow(beta1, t)))
        let correction2Root = Float((1 - Foundation.pow(beta2, t)).squareRoot())
        let decay = Float(1 - learningRate * weightDecay)
        let b1 = Float(beta1), b2 = Float(beta2), eps = Float(epsilon)
        let oneMinusB1 = Float(1 - beta1), oneMinusB2 = Float(1 - beta2)
        _ = b1
        for (name, parameter) in parameters {
            guard let grad = parameter.grad?.scalars else { continue }
            let count = grad.count
            // Taken out of the dictionary while updated, so the in-place update does not copy them.
            var m = moments.takeBuffer("exp_avg.\(name)", count: count)
            var v = moments.takeBuffer("exp_avg_sq.\(name)", count: count)
            parameter.update { p in
                grad.withUnsafeBufferPointer { gp in
                    m.withUnsafeMutableBufferPointer { mp in
                        v.withUnsafeMutableBufferPointer { vp in
                            guard let p = p.baseAddress, let g = gp.baseAddress, let m = mp.baseAddress,
                                  let v = vp.baseAddress else { return }
                            Parallel.forRanges(count, minimumPerThread: 1 << 16) { range in
                                // Eight at a time, then the tail; the same operations in the same order either way.
                                typealias V = SIMD8<Float>
                                @inline(__always) func load(_ q: UnsafeMutablePointer<Float>) -> V {
                                    UnsafeRawPointer(q).loadUnaligned(as: V.self)
                                }
                                @inline(__always) func store(_ x: V, _ q: UnsafeMutablePointer<Float>) {
                                    UnsafeMutableRawPointer(q).storeBytes(of: x, as: V.self)
                                }
                                var i = range.lowerBound
                                while i + 8 <= range.upperBound {
                                    let gi = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
                                    let pi = load(p + i) * decay
                                    let mi = load(m + i) + (gi - load(m + i)) * oneMinusB1
                                    let vi = load(v + i) * b2 + oneMinusB2 * gi * gi
                                    store(mi, m + i)
                                    store(vi, v + i)
                                    store(pi - stepSize * (mi / (vi.squareRoot() / correction2Root + eps)), p + i)
                                    i += 8
                                }
                                while i < range.upperBound {
                                    let gi = g[i]
                                    let pi = p[i] * decay
                                    let mi = m[i] + (gi - m[i]) * oneMinusB1
                                    let vi = v[i] * b2 + oneMinusB2 * gi * gi
                                    m[i] = mi
                                    v[i] = vi
                                    p[i] = pi - stepSize * (mi / (vi.squareRoot() / correction2Root + eps))
                                    i += 1
                                }
                            }
                        }
                    }
                }
            }
            moments.buffers["exp_avg.\(name)"] = m
            moments.buffers["exp_avg_sq.\(name)"] = v
        }
    }

    /// The moment buffers, `exp_avg.<name>` and `exp_avg_sq.<name>`, shaped as their parameters.
    public func stateTensors() -> [String: Tensor<Float>] {
        moments.tensors(parameters, kinds: ["exp_avg", "exp_avg_sq"])
    }

    /// Restores moment buffers saved by `stateTensors` and the step count; throws on unknown names or shapes.
    public func loadState(_ tensors: [String: Tensor<Float>], stepCount: Int) throws {
        moments = try MomentBuffers.load(tensors, parameters: parameters, kinds: ["exp_avg", "exp_avg_sq"],
                                         optimizer: "AdamW")
        self.stepCount = stepCount
    }
}

// MARK: - SGD

/// Stochastic gradient descent with momentum and (coupled) weight decay, as `torch.optim.SGD`:
/// g += wd p; b = momentum b + g (b = g on the first step); p -= lr b.
public final class SGD: Optimizer {
    /// The parameters updated, by `state_dict` name (the names key the momentum buffers).
    public let parameters: [(name: String, parameter: Parameter)]
    /// The step size lr; schedules set it before each step.
    public var learningRate: Double
    /// Momentum (0: none) and coupled weight decay, as PyTorch names them.
    public let momentum: Double, weightDecay: Double
    /// Steps taken.
    public private(set) var stepCount = 0
    private var moments = MomentBuffers()

    /// SGD over named parameters with learning rate `learningRate`, `momentum` and `weightDecay` (both 0 by default).
    public init(parameters: [(name: String, parameter: Parameter)], learningRate: Double, momentum: Double = 0,
                weightDecay: Double = 0) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    /// SGD over every parameter of `module`, by `state_dict` name: `SGD(model, learningRate: 0.1)`.
    public convenience init(_ module: Module, learningRate: Double, momentum: Double = 0, weightDecay: Double = 0) {
        self.init(parameters: module.namedParameters, learningRate: learningRate, momentum: momentum,
                  weightDecay: weightDecay)
    }

    /// SGD over `parameters` (`SGD(model.parameters(), learningRate: 0.1)`), named "0", "1", ... in the order given.
    public convenience init(_ parameters: [Parameter], learningRate: Double, momentum: Double = 0,
                            weightDecay: Double = 0) {
        self.init(parameters: numbered(parameters), learningRate: learningRate, momentum: momentum,
                  weightDecay: weightDecay)
    }

    /// PyTorch's spelling, `SGD(model, lr: 0.1)`: the same as `SGD(model, learningRate: 0.1)`.
    public convenience init(_ module: Module, lr: Double, momentum: Double = 0, weightDecay: Double = 0) {
        self.init(module, learningRate: lr, momentum: momentum, weightDecay: weightDecay)
    }

    /// PyTorch's spelling, `SGD(model.parameters(), lr: 0.1)`: the same as the `learningRate:` form.
    public convenience init(_ parameters: [Parameter], lr: Double, momentum: Double = 0, weightDecay: Double = 0) {
        self.init(parameters, learningRate: lr, momentum: momentum, weightDecay: weightDecay)
    }

    /// One SGD update of every parameter that has a gradient.
    public func step() {
        stepCount += 1
        let lr = Float(learningRate), mu = Float(momentum), wd = Float(weightDecay)
        for (name, parameter) in parameters {
            guard let grad = parameter.grad?.scalars else { continue }
            let key = "momentum_buffer.\(name)"
            let first = moments.buffers[key] == nil
            var buffer = moments.buffer(key, count: grad.count)
            parameter.update { p in
                for i in 0..<grad.count {
                    let g = grad[i] + wd * p[i]
                    if mu != 0 {
                        buffer[i] = first ? g : mu * buffer[i] + g
                        p[i] -= lr * buffer[i]
                    } else {
                        p[i] -= lr * g
                    }
                }
            }
            if mu != 0 { moments.buffers[key] = buffer }
        }
    }

    /// The momentum buffers, `momentum_buffer.<name>`, shaped as their parameters.
    public func stateTensors() -> [String: Tensor<Float>] { moments.tensors(parameters, kinds: ["momentum_buffer"]) }

    /// Restores momentum buffers saved by `stateTensors` and the step count; throws on unknown names or shapes.
    public func loadState(_ tensors: [String: Tensor<Float>], stepCount: Int) throws {
        moments = try MomentBuffers.load(tensors, parameters: parameters, kinds: ["momentum_buffer"], optimizer: "SGD")
        self.stepCount = stepCount
    }
}

// MARK: - Learning-rate schedules

/// A learning rate as a function of the step (0-based) and the total number of steps.
public enum LearningRateSchedule: Sendable, Equatable {
    /// The base rate throughout.
    case constant
    /// Cosine decay from the base rate to `floor * base` over the run, after `warmup` linear warm-up steps.
    case cosine(warmup: Int, floor: Double)
    /// Multiplies the rate by `gamma` every `every` steps.
    case step(every: Int, gamma: Double)

    /// The learning rate at `step` (0-based) of `totalSteps` for base rate `base`.
    public func rate(base: Double, step: Int, totalSteps: Int) -> Double {
        switch self {
        case .constant:
            return base
        case .cosine(let warmup, let floor):
            if step < warmup { return base * Double(step + 1) / Double(warmup) }
            let progress = Double(step - warmup) / Double(max(1, totalSteps - warmup))
            return base * (floor + (1 - floor) * 0.5 * (1 + Foundation.cos(Double.pi * min(1, progress))))
        case .step(let every, let gamma):
            return base * Foundation.pow(gamma, Double(step / max(1, every)))
        }
    }
}
