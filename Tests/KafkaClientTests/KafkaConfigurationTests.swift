import Testing
@testable import KafkaClient

@Suite struct KafkaConfigurationTests {
    @Test func appliesAssignmentsAndMasksSecrets() throws {
        var config = KafkaConfiguration()
        try config.apply(assignments: ["bootstrap.servers=b1:9092", "sasl.password = hunter2", "client.id=a=b"])
        try config.apply(environmentList: "security.protocol=SASL_SSL, sasl.mechanisms=PLAIN")
        #expect(config["client.id"] == "a=b")
        #expect(config["sasl.password"] == "hunter2")
        #expect(config["security.protocol"] == "SASL_SSL")
        #expect(!config.description.contains("hunter2"))
        #expect(config.description.contains("sasl.password=***"))
    }

    @Test func rejectsAssignmentsWithoutEquals() {
        var config = KafkaConfiguration()
        #expect { try config.apply(assignments: ["fetch.wait.max.ms"]) } throws: { error in
            (error as! KafkaError).message.contains("'fetch.wait.max.ms' is not key=value")
        }
    }

    @Test func unknownPropertyIsNamedWhenTheClientIsCreated() {
        let config = KafkaConfiguration(["bootstrap.servers": "127.0.0.1:1", "no.such.property": "1"])
        #expect { _ = try KafkaProducer(configuration: config) } throws: { error in
            let e = error as! KafkaError
            return e.kind == .configuration && e.message.contains("no.such.property")
        }
        #expect { _ = try KafkaConsumer(configuration: KafkaConfiguration(["bootstrap.servers": "127.0.0.1:1"])) } throws: { error in
            (error as! KafkaError).message.contains("group.id is required")
        }
    }
}
