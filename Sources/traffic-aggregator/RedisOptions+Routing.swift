import ServiceCLI
import ArgumentParser
import RedisClient
import TrafficModel

extension RedisOptions {
    /// Connects to the URL's Redis — one server, or every primary of a `redis-cluster://` — with
    /// the key names that go with it (the camera id as hash tag in cluster mode).
    func connectRouting() async throws -> (redis: any RedisRouting, keys: KeySchema) {
        let configuration = try RedisConfiguration(url: resolvedURL)
        if configuration.isCluster, let problem = KeySchema.clusterProblem(namespace: resolvedNamespace) { throw ValidationError(problem) }
        return (try await connectRedis(configuration: configuration), KeySchema(namespace: resolvedNamespace, hashTagged: configuration.isCluster))
    }
}
