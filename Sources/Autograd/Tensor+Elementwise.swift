// MARK: - Elementwise ops with NumPy broadcasting

extension Tensor {
    /// Applies a unary kernel to every element (no recording).
    func applying(_ op: UnaryOp<Scalar>) -> Tensor {
        Tensor(shape: shape, scalars: [Scalar](fillingAll: count) { out in
            scalars.withUnsafeBufferPointer {
                Scalar.map(op, $0, UnsafeMutableBufferPointer(start: out, count: count))
            }
        })
    }

    /// Combines two tensors elementwise, broadcasting both (no recording).
    static func combining(_ a: Tensor, _ b: Tensor, _ op: BinaryOp, name: String) -> Tensor {
        guard let shape = ShapeMath.broadcast(a.shape, b.shape) else {
            fatalError("\(name): shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let sa = ShapeMath.broadcastStrides(a.shape, to: shape)
        let sb = ShapeMath.broadcastStrides(b.shape, to: shape)
        let count = shape.reduce(1, *)
        if count == 0 { return Tensor(zeros: shape) }
        return Tensor(shape: shape, scalars: [Scalar](fillingAll: count) { out in
            a.scalars.withUnsafeBufferPointer { pa in
                b.scalars.withUnsafeBufferPointer { pb in
                    Scalar.zip(op, pa.baseAddress!, sa, pb.baseAddress!, sb, out, shape: shape)
                }
            }
        })
    }

    // MARK: Binary

    /// a + b, broadcasting.  d/da = g, d/db = g (summed back over broadcast axes).
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        record(combining(a, b, .add, name: "add"), inputs: [a, b]) { g in [g, g] }
    }

    /// a - b, broadcasting.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        record(combining(a, b, .sub, name: "sub"), inputs: [a, b]) { g in [g, -g] }
    }

    /// a * b, broadcasting.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let (ca, cb) = (a.detached(), b.detached())
        return record(combining(a, b, .mul, name: "mul"), inputs: [a, b]) { g in
            [a.requiresGradient ? g * cb : nil, b.requiresGradient ? g * ca : nil]
        }
    }

    /// a / b, broadcasting.  d/db = -g * a / b^2.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let (ca, cb) = (a.detached(), b.detached())
        return record(combining(a, b, .div, name: "div"), inputs: [a, b]) { g in
            [a.requiresGradient ? g / cb : nil,
             b.requiresGradient ? -(g * ca / (cb * cb)) : nil]
        }
    }

    /// Elementwise maximum, broadcasting. On ties the gradient is split evenly, as in PyTorch.
    public static func maximum(_ a: Tensor, _ b: Tensor) -> Tensor {
        let (ca, cb) = (a.detached(), b.detached())
        return record(combining(a, b, .maximum, name: "maximum"), inputs: [a, b]) { g in
            [a.requiresGradient ? g * combining(ca, cb, .maximumShare, name: "maximum") : nil,
             b.requiresGradient ? g * combining(cb, ca, .maximumShare, name: "maximum") : nil]
        }
    }

    // MARK: Scalar forms

    /// a + s for every element; same shape as `a`. Gradient: g.
    public static func + (a: Tensor, s: Scalar) -> Tensor {
        record(a.applying(.shift(s)), inputs: [a]) { g in [g] }
    }
    /// s + a for every element; same shape as `a`.
    public static func + (s: Scalar, a: Tensor) -> Tensor { a + s }
    /// a - s for every element; same shape as `a`.
    public static func - (a: Tensor, s: Scalar) -> Tensor { a + (-s) }
    /// s - a for every element; same shape as `a`.
    public static func - (s: Scalar, a: Tensor) -> Tensor { (-a) + s }
    /// a * s for every element; same shape as `a`. Gradient: s g.
    public static func * (a: Tensor, s: Scalar) -> Tensor {
        record(a.applying(.scale(s)), inputs: [a]) { g in [g * s] }
    }
    /// s * a for every element; same shape as `a`.
    public static func * (s: Scalar, a: Tensor) -> Tensor { a * s }
    /// a / s for every element; same shape as `a`.
    public static func / (a: Tensor, s: Scalar) -> Tensor { a * (1 / s) }
    /// s / a for every element; same shape as `a`. Gradient: -g s / a^2.
    public static func / (s: Scalar, a: Tensor) -> Tensor { Tensor(s) / a }

    // MARK: Unary

    /// -a for every element; same shape. Gradient: -g.
    public static prefix func - (a: Tensor) -> Tensor {
        record(a.applying(.neg), inputs: [a]) { g in [-g] }
    }

    /// e^x.
    public func exp() -> Tensor {
        let y = applying(.exp)
        let cy = y
        return Tensor.record(y, inputs: [self]) { g in [g * cy] }
    }

    /// Natural logarithm.
    public func log() -> Tensor {
        let cx = detached()
        return Tensor.record(applying(.log), inputs: [self]) { g in [g / cx] }
    }

    /// Square root.
    public func sqrt() -> Tensor {
        let y = applying(.sqrt)
        let cy = y
        return Tensor.record(y, inputs: [self]) { g in [g / (cy * 2)] }
    }

    /// x^p, elementwise. For p = 0 the gradient is 0 everywhere (also at x = 0, as in PyTorch).
    public func pow(_ p: Scalar) -> Tensor {
        let cx = detached()
        return Tensor.record(applying(.power(p)), inputs: [self]) { g in
            [p == 0 ? Tensor(zeros: g.shape) : g * cx.applying(.power(p - 1)) * p]
        }
    }

    /// max(x, 0). The gradient at exactly 0 is 0, as in PyTorch.
    public func relu() -> Tensor {
        let y = applying(.relu)
        guard requiresGradient else { return y }
        // The backward reads the output itself (y > 0 exactly where x > 0): no mask is kept.
        let saved = y.scalars
        return Tensor.record(y, inputs: [self]) { g in
            [Tensor(shape: g.shape, scalars: [Scalar](fillingAll: g.count) { dx in
                g.scalars.withUnsafeBufferPointer { pg in
                    saved.withUnsafeBufferPointer { py in
                        Scalar.reluBackward(pg.baseAddress!, py.baseAddress!, dx, count: g.count)
                    }
                }
            })]
        }
    }
}
