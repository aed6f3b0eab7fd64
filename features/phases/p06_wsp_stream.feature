@phase:P6
Feature: P6 WSP streaming
  After its run's READY, the world stream producer sends the run's events to IG from the P3
  stream view only, in stream order, with a deterministic event identity, retrying what IG did
  not answer. This is shown by behaviour: the raw landed objects are removed before it streams,
  the first attempt is killed mid-stream and run again, and a withheld stream view must stop it
  before it sends anything. The harness reads IG's receipts and the traffic topic itself.

  Scenario: WSP streams the whole run from the stream view with the raw landed objects removed
    When the raw landed objects are removed and WSP streams the run, killed mid-stream once
    Then every event of the stream view is admitted and on the traffic topic, and no landed object remains

  Scenario: The events IG received are the stream view's rows in its order
    Given WSP streamed the run
    Then per WSP attempt, IG received the stream view's events in the view's order

  Scenario: A WSP restart mid-stream produces no second record on the topic
    Given WSP streamed the run
    Then the restart got DUPLICATE receipts for what was admitted before the kill, and each event is on the topic once

  Scenario: With the stream view withheld WSP sends nothing and names it
    Given WSP streamed the run
    When the stream view is withheld and WSP is started again
    Then WSP exits 1 naming the stream view, and IG received nothing
