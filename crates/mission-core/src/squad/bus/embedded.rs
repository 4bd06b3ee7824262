//! librdkafka's in-process mock cluster, the embedded Kafka when no brokers are configured.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaRespErr;

/// What the embedded cluster's thread is asked to do.
enum MockCommand {
    CreateTopic(String, std::sync::mpsc::Sender<Result<(), KafkaError>>),
    LoseTopic(String, std::sync::mpsc::Sender<Result<(), KafkaError>>),
    BrokerDown(i32, std::sync::mpsc::Sender<Result<(), KafkaError>>),
    BrokerUp(i32, std::sync::mpsc::Sender<Result<(), KafkaError>>),
    ProduceErrors(usize, std::sync::mpsc::Sender<Result<(), KafkaError>>),
    UncertainProduce(std::sync::mpsc::Sender<Result<(), KafkaError>>),
    RoundTrip(
        i32,
        std::time::Duration,
        std::sync::mpsc::Sender<Result<(), KafkaError>>,
    ),
    Fence(std::sync::mpsc::Sender<Result<(), KafkaError>>),
}

/// librdkafka's mock cluster, on a thread of its own: the cluster handle may not move between
/// threads, and the bus is shared by every task. Dropping this stops the cluster.
pub struct EmbeddedCluster {
    commands: std::sync::mpsc::Sender<MockCommand>,
    pub(super) bootstrap_servers: String,
}

impl EmbeddedCluster {
    /// Starts a one-broker cluster (broker id 1).
    pub(super) fn start() -> Result<Self, KafkaError> {
        let (commands, inbox) = std::sync::mpsc::channel::<MockCommand>();
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("kafka-mock-cluster".to_owned())
            .spawn(move || {
                let mock = match MockCluster::new(1) {
                    Ok(mock) => mock,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(mock.bootstrap_servers()));
                // Until the bus (the only sender) is dropped.
                while let Ok(command) = inbox.recv() {
                    match command {
                        MockCommand::CreateTopic(topic, reply) => {
                            // An existing topic is fine, and one the cluster was told it lost
                            // is known again: creating it is what brings it back.
                            let created = match mock.create_topic(&topic, 1, 1) {
                                Err(KafkaError::MockCluster(
                                    RDKafkaErrorCode::TopicAlreadyExists,
                                )) => Ok(()),
                                other => other,
                            };
                            let known = mock.topic_error(&topic, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR);
                            let _ = reply.send(created.and(known));
                        }
                        MockCommand::LoseTopic(topic, reply) => {
                            let _ = reply.send(mock.topic_error(
                                &topic,
                                RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                            ));
                        }
                        MockCommand::BrokerDown(id, reply) => {
                            let _ = reply.send(mock.broker_down(id));
                        }
                        MockCommand::BrokerUp(id, reply) => {
                            let _ = reply.send(mock.broker_up(id));
                        }
                        MockCommand::ProduceErrors(count, reply) => {
                            // Retriable: the producer must retry without writing twice.
                            let errors = vec![
                                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
                                count
                            ];
                            mock.request_errors(rdkafka::types::RDKafkaApiKey::Produce, &errors);
                            let _ = reply.send(Ok(()));
                        }
                        MockCommand::UncertainProduce(reply) => {
                            // Not written, but the answer says it may have been: the producer
                            // retries, and must not take the batch for written meanwhile.
                            mock.request_errors(
                                rdkafka::types::RDKafkaApiKey::Produce,
                                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND],
                            );
                            let _ = reply.send(Ok(()));
                        }
                        MockCommand::RoundTrip(id, delay, reply) => {
                            let _ = reply.send(mock.broker_round_trip_time(id, delay));
                        }
                        MockCommand::Fence(reply) => {
                            mock.request_errors(
                                rdkafka::types::RDKafkaApiKey::Produce,
                                &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH],
                            );
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("mock cluster thread: {e}")))?;
        let bootstrap_servers = started
            .recv()
            .map_err(|_| KafkaError::ClientCreation("the mock cluster did not start".into()))??;
        Ok(Self {
            commands,
            bootstrap_servers,
        })
    }

    fn ask(
        &self,
        command: impl FnOnce(std::sync::mpsc::Sender<Result<(), KafkaError>>) -> MockCommand,
    ) -> Result<(), KafkaError> {
        let (reply, answer) = std::sync::mpsc::channel();
        let gone = || KafkaError::ClientCreation("the mock cluster has stopped".into());
        self.commands.send(command(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    /// Creates a topic with one partition.
    pub fn create_topic(&self, topic: &str) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::CreateTopic(topic.to_owned(), reply))
    }

    /// Makes the cluster answer as a broker that came back without this topic: its metadata
    /// says the topic is unknown until it is created again (fault tests).
    pub fn lose_topic(&self, topic: &str) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::LoseTopic(topic.to_owned(), reply))
    }

    /// Takes a broker down (fault tests): clients see it as unreachable.
    pub fn broker_down(&self, broker_id: i32) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::BrokerDown(broker_id, reply))
    }

    /// Brings a broker back.
    pub fn broker_up(&self, broker_id: i32) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::BrokerUp(broker_id, reply))
    }

    /// Refuses the next produce request as coming from a stale producer epoch, as a broker
    /// does to a producer it no longer accepts (fault tests).
    pub fn fence_next_producer(&self) -> Result<(), KafkaError> {
        self.ask(MockCommand::Fence)
    }

    /// Makes the next produce request fail the way a lost answer does: nothing is written,
    /// and the producer cannot tell whether it was (fault tests).
    pub fn fail_next_produce_uncertainly(&self) -> Result<(), KafkaError> {
        self.ask(MockCommand::UncertainProduce)
    }

    /// Delays every answer of a broker by `delay` (fault tests: requests stay in flight).
    pub fn slow_broker(
        &self,
        broker_id: i32,
        delay: std::time::Duration,
    ) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::RoundTrip(broker_id, delay, reply))
    }

    /// Makes the next `count` produce requests fail with a retriable error (fault tests).
    pub fn fail_next_produce_requests(&self, count: usize) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::ProduceErrors(count, reply))
    }
}
