//! The policy engine node. In this build it is a pass-through (enrich mode without policies):
//! every record goes on unchanged. The engine itself is a separate piece of work.

use sfactors::{Node, NodeError};

use super::batch::Records;

#[derive(Default)]
pub struct PassThroughNode;

impl Node for PassThroughNode {
    type In = Records;
    type Out = Records;

    fn process(&mut self, input: Records, out: &mut Vec<Records>) -> Result<(), NodeError> {
        out.push(input);
        Ok(())
    }
}
