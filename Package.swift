// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "GroupConv",
    products: [
        .library(name: "Autograd", targets: ["Autograd"]),
        .library(name: "NN", targets: ["NN"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Train", targets: ["Train"]),
    ],
    targets: [
        // System libraries: BLAS/LAPACKE (OpenBLAS on Debian) and zlib.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS",
                       providers: [.apt(["libopenblas-pthread-dev", "liblapacke-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),

        // Libraries: dependencies point one way, Autograd <- NN <- Models; Train uses Autograd and NN.
        .target(name: "Autograd", dependencies: ["CBLAS"]),
        .target(name: "NN", dependencies: ["Autograd"]),
        .target(name: "Models", dependencies: ["NN"]),
        .target(name: "Train", dependencies: ["Autograd", "NN", "CZlib"]),

        // Executables.

        // Tests.
        .testTarget(name: "AutogradTests", dependencies: ["Autograd"], path: "Tests/AutogradTests"),
    ]
)
